"""`cxr-tfx demo-data`: a synthetic dataset (also `run`'s without --csv)."""
from pipeline import progress


def _generate_demo(display: progress.Display, out: str, scale: float, missing_masks: float,
                   seed: int, workers: int):
  from pipeline import demo_data
  with display.activity('[demo-data]', done_text='[demo-data] written in {seconds}'):
    return demo_data.generate(
        out, scale=scale, missing_masks=missing_masks, seed=seed, workers=workers,
        progress=lambda done, total: display.report(done, total, 'images'))


def _demo_data(args, display: progress.Display) -> int:
  from pipeline import demo_data
  if args.spans:
    display.line(f'cxr-tfx demo-data: {args.spans} spans of {args.rows_per_span} images into '
                 f'{args.out}')
    with display.activity('[demo-data]', done_text='[demo-data] written in {seconds}'):
      ds = demo_data.generate_spans(args.out, rows_per_span=args.rows_per_span,
                                    mixes=demo_data.span_mixes(args.spans), seed=args.seed)
    display.close()
    for path, counts in zip(ds.csv_paths, ds.class_counts):
      print(f'wrote {path}: ' + ', '.join(f'{c} {n}' for c, n in counts.items()))
    print(f'class mapping: {ds.class_mapping_path}')
    print(f"next: cxr-tfx run --csv '{ds.csv_pattern}' --group-column "
          f'{demo_data.PATIENT_COLUMN} --mask-size 256x256 --span 1')
    return 0
  n = sum(demo_data.class_counts_for_scale(args.scale).values())
  display.line(f'cxr-tfx demo-data: {n:,} images (scale {args.scale}) into {args.out}, '
               f'{args.workers} process(es)')
  ds = _generate_demo(display, args.out, args.scale, args.missing_masks, args.seed,
                      args.workers)
  display.close()
  print(f'wrote {ds.num_rows} images ({ds.num_missing_masks} without masks): {ds.csv_path}')
  print(f'class mapping: {ds.class_mapping_path}')
  return 0
