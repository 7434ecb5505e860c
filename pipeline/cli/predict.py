"""`cxr-tfx predict`: score image files with a pushed model (the class, every class's
probability, how much of the image the lung mask covers), and write the masks if asked.

``add_predict_parser(subparsers)`` adds the command; ``_predict(args, display)`` runs it."""
import argparse
import json
import os

from components import options as options_lib
from components.errors import ConfigError
from components.image_example_gen import config as ingest_config
from pipeline import configs
from pipeline import progress

_EXAMPLES = (
    'cxr-tfx predict --model out/ data/COVID-19_Radiography_Dataset/COVID/images/COVID-1.png'
    '   # the newest pushed model of a pipeline root',
    'cxr-tfx predict --model out/serving_model/1733412345 scan.dcm chest.jpg --masks-out masks/',
    'cxr-tfx predict --model out/serving_model --json data/*/*/images/*.png > predictions.jsonl',
)


def add_predict_parser(subparsers) -> argparse.ArgumentParser:
  """The `predict` command's arguments, on ``subparsers`` (build_parser's)."""
  p = subparsers.add_parser(
      'predict', help='score image files with a pushed model: class, probabilities, lung mask',
      description='Loads a served model (what `cxr-tfx run --train` pushed) and runs its '
                  'serving_default signature on\neach IMAGE: PNG and JPEG files as they are, '
                  'DICOM files rendered to PNG as ImageExampleGen renders\nthem. Prints one '
                  'line per image: the predicted class, every class\'s probability and the '
                  'share of the\nimage the predicted lung mask covers. No TensorFlow until the '
                  'files are checked.',
      epilog='examples:\n' + '\n'.join(f'  {line}' for line in _EXAMPLES),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('images', nargs='+', metavar='IMAGE', help='PNG, JPEG or DICOM files')
  p.add_argument('--model', required=True, metavar='DIR_OR_ROOT',
                 help='a pushed model (<serving dir>/<version>), a serving folder (its newest '
                      'version), a pipeline root (the newest model in its '
                      f'{configs.SERVING_MODEL_DIR}/) or a Trainer model folder')
  p.add_argument('--masks-out', default='', metavar='DIR',
                 help='write each image\'s predicted lung mask to DIR/<stem>_mask.png (8-bit, '
                      '255 = lung, at the model\'s input size)')
  p.add_argument('--json', action='store_true',
                 help='one JSON object per image (path, class, probabilities, mask_coverage, '
                      'mask) instead of the table')
  p.add_argument('--batch-size', type=options_lib.positive_int, default=16, metavar='N',
                 help='images per request (default %(default)s)')
  for field in ('dicom_window', 'dicom_output'):
    opt = options_lib.option_for(ingest_config.IngestConfig, field)
    p.add_argument(opt.flag, default=getattr(ingest_config.IngestConfig, field),
                   choices=opt.choices or None, metavar=opt.metavar,
                   help=f'{opt.help}; use what the model\'s data was ingested with')
  p.add_argument('--quiet', action='store_true',
                 help='print results and errors only: no start-up line or spinner')
  return p


def _predict(args, display: progress.Display) -> int:
  from components.trainer import predict as predict_lib
  missing = [p for p in args.images if not os.path.isfile(p)]
  if missing:
    raise ConfigError(f'no such image file: {", ".join(missing[:5])}'
                      + (f' and {len(missing) - 5} more' if len(missing) > 5 else ''))
  try:
    ingest_config.parse_dicom_window(args.dicom_window)
  except ValueError as e:
    raise ConfigError(f'{e} (option --dicom-window).') from e
  model_dir = predict_lib.find_saved_model(args.model)
  display.line(f'cxr-tfx predict: {len(args.images)} image(s) with the model {model_dir}')
  progress.quiet_native_logs()
  with display.activity('loading TensorFlow', done_text='loaded TensorFlow in {seconds}'):
    import tensorflow  # noqa: F401  (15-40 s: under the spinner)
  with display.activity('scoring', done_text='scored in {seconds}'):
    results = predict_lib.predict(model_dir, args.images, args.batch_size, args.dicom_window,
                                  args.dicom_output)
  display.close()
  mask_paths = [''] * len(results)
  if args.masks_out:
    os.makedirs(args.masks_out, exist_ok=True)
    mask_paths = [os.path.join(args.masks_out, n)
                  for n in predict_lib.mask_names([r.path for r in results])]
    for result, path in zip(results, mask_paths):
      with open(path, 'wb') as f:
        f.write(predict_lib.mask_png(result.mask))
  if args.json:
    for result, mask in zip(results, mask_paths):
      print(json.dumps({'path': result.path, 'class': result.class_name,
                        'probabilities': result.probabilities,
                        'mask_coverage': round(result.mask_coverage, 4), 'mask': mask}))
    return 0
  names = list(results[0].probabilities) if results else []
  print('\t'.join(['image', 'class', *(f'p({n})' for n in names), 'mask coverage']
                  + (['mask'] if args.masks_out else [])))
  for result, mask in zip(results, mask_paths):
    print('\t'.join([result.path, result.class_name,
                     *(f'{result.probabilities[n]:.3f}' for n in names),
                     f'{result.mask_coverage:.1%}'] + ([mask] if args.masks_out else [])))
  return 0
