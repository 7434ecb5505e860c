"""``python -m bench.near_duplicates``: near-duplicate detection against CleanVision and imagehash.

Usage: python -m bench.near_duplicates [--scale 0.01] [--copies-of 10] [--grouping-records 21165]
                                       [--work-dir bench/work] [--out bench/results] [--seed 0]

Two planted-copy sets: the demo radiographs (pipeline.demo_data.generate at --scale: 211 images
at 0.01) and a second generator with other anatomy (``render_other``: non-square films of
several sizes, clavicles, heart shadow, diaphragm domes, 12-bit-like smooth texture). In each,
--copies-of originals get five copies: re-encoded (RGB PNG), resized (x0.5-0.8 or x1.2-1.6),
brightness-shifted (PIL Brightness x0.7-0.85 or x1.15-1.3), cropped (2-8% off each side,
same pixel scale), JPEG-recompressed (quality 40-75). Found: a copy in one group with its
original. False pairs: pairs of different originals in one group (a copy counts as its
original). Compared: ours (perceptual + near_duplicates.group_pairs), CleanVision 0.3.7's
near-duplicate issue (Imagelab on the folder, single process), imagehash's phash with exact
match (what CleanVision does) and with Hamming distance <= 6, all pairs.

Grouping at scale: --grouping-records fingerprints of the demo data at scale 1 (bench.run's
cached dataset under --work-dir; generated when missing) -- candidate pairs, groups, and the
time of group_pairs in memory and of NearDuplicateGroups on Beam's DirectRunner (minus the same
pipeline without it). Writes <out>/near_duplicates.json and .md.
"""
import argparse
import csv
import datetime
import io
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image
from PIL import ImageEnhance

from components.image_example_gen import image_facts
from components.image_example_gen import near_duplicate_pairs
from components.image_example_gen import near_duplicates
from components.image_example_gen import perceptual
from components.image_example_gen import quality
from components.image_example_gen import shortcut

KINDS = ('reencoded', 'resized', 'brightness', 'cropped', 'jpeg')
PASSES = 3
COST_PASSES = 9  # per-image costs: the fastest of these passes (each ~0.1 s; the machine is shared)
HAMMING = 6


def render_other(n: int, seed: int) -> np.ndarray:
  """A radiograph of another anatomy than demo_data's: uint8, non-square, size varies."""
  rng = np.random.default_rng([seed, 0x07E5, n])
  h = int(rng.integers(360, 520))
  w = int(h * rng.uniform(0.8, 1.05))
  y, x = np.meshgrid(np.linspace(-1, 1, h, dtype=np.float32),
                     np.linspace(-1, 1, w, dtype=np.float32), indexing='ij')
  img = 0.25 + 0.35 * np.exp(-((x / 0.85) ** 6 + ((y + 0.1) / 1.2) ** 6))  # body
  for side in (-1, 1):  # lungs: rounded, narrowing to the top
    cx, cy = side * rng.uniform(0.33, 0.43), rng.uniform(-0.15, 0.0)
    d = ((x - cx) / (0.25 + 0.08 * (y - cy))) ** 2 + ((y - cy) / rng.uniform(0.5, 0.62)) ** 2
    img -= 0.22 * np.clip(1.3 - d, 0, 1)
  heart = ((x - rng.uniform(0.05, 0.15)) / rng.uniform(0.22, 0.3)) ** 2 + \
      ((y - 0.3) / 0.25) ** 2
  img += 0.18 * np.clip(1.2 - heart, 0, 1)
  dome = y - (0.55 + rng.uniform(-0.05, 0.05) - 0.25 * x ** 2)
  img += 0.25 * (1 / (1 + np.exp(-dome * 25)))  # diaphragm
  for side in (-1, 1):  # clavicles
    clav = np.abs(y - (-0.62 + rng.uniform(-0.04, 0.04) + 0.25 * (x * side - 0.3) ** 2))
    img += 0.15 * np.exp(-(clav / 0.025) ** 2) * (np.abs(x) < 0.7)
  for _ in range(int(rng.integers(4, 9))):  # vessels and nodules
    vx, vy = rng.uniform(-0.6, 0.6), rng.uniform(-0.4, 0.4)
    img += rng.uniform(0.03, 0.08) * np.exp(-((x - vx) ** 2 + (y - vy) ** 2)
                                            / rng.uniform(0.001, 0.01))
  texture = rng.standard_normal((h // 8 + 1, w // 8 + 1)).astype(np.float32)
  texture = np.kron(texture, np.ones((8, 8), np.float32))[:h, :w]
  img += 0.02 * texture + 0.01 * rng.standard_normal((h, w)).astype(np.float32)
  img *= rng.uniform(0.85, 1.15)
  return np.clip(img * 255, 0, 255).astype(np.uint8)


def _encode(img: Image.Image, fmt: str = 'PNG', **kw) -> bytes:
  buf = io.BytesIO()
  img.save(buf, format=fmt, **kw)
  return buf.getvalue()


def plant(originals: List[np.ndarray], copies_of: int, seed: int
          ) -> List[Tuple[str, str, bytes]]:
  """-> [(name, origin name, file bytes)]: every original as PNG, then five copies of
  ``copies_of`` of them."""
  rng = np.random.default_rng([seed, 0xC0])
  files = [(f'o{i:04d}', f'o{i:04d}', _encode(Image.fromarray(x)))
           for i, x in enumerate(originals)]
  for i in rng.choice(len(originals), copies_of, replace=False):
    im, origin = Image.fromarray(originals[i]), f'o{i:04d}'
    w, h = im.size
    s = rng.choice([rng.uniform(0.5, 0.8), rng.uniform(1.2, 1.6)])
    f = rng.choice([rng.uniform(0.7, 0.85), rng.uniform(1.15, 1.3)])
    m = rng.uniform(0.02, 0.08, 4)
    made = {
        'reencoded': _encode(im.convert('RGB'), optimize=True),
        'resized': _encode(im.resize((round(w * s), round(h * s)), Image.BILINEAR)),
        'brightness': _encode(ImageEnhance.Brightness(im).enhance(f)),
        'cropped': _encode(im.crop((round(m[0] * w), round(m[1] * h), w - round(m[2] * w),
                                    h - round(m[3] * h)))),
        'jpeg': _encode(im, 'JPEG', quality=int(rng.integers(40, 76))),
    }
    files += [(f'c{i:04d}_{kind}', origin, data) for kind, data in made.items()]
  return files


def score(groups: List[List[str]], origin: Dict[str, str]) -> Dict[str, object]:
  """Copies found (in a group with their original, by kind) and false pairs."""
  found = {k: 0 for k in KINDS}
  false_pairs = 0
  for g in groups:
    members = set(g)
    for name in g:
      if name.startswith('c') and origin[name] in members:
        found[name.split('_', 1)[1]] += 1
    for i, a in enumerate(g):
      false_pairs += sum(origin[a] != origin[b] for b in g[i + 1:])
  copies = sum(1 for n in origin if n.startswith('c'))
  return {'found': sum(found.values()), 'copies': copies, 'by_kind': found,
          'recall': sum(found.values()) / copies if copies else None, 'false_pairs': false_pairs}


def per_item_ms(fn, items, passes: int = COST_PASSES) -> float:
  """Milliseconds per item of fn over items: the fastest of ``passes`` passes (the machine is
  shared: the fastest pass is the least disturbed)."""
  best = float('inf')
  for _ in range(passes):
    start = time.perf_counter()
    for item in items:
      fn(item)
    best = min(best, time.perf_counter() - start)
  return best / len(items) * 1e3


def ours(files, origin) -> Dict[str, object]:
  """Our grouping of a planted set, and the workers' cost per image as they pay it
  (image_facts.measure): uint8 grey pixels are measured as decoded, anything else (the RGB
  re-encodings) through to_grey first; quality.summarise (the strided sample, its histogram and
  moments) is computed once and shared by quality.measure and shortcut.properties."""
  decoded = [(name, np.asarray(Image.open(io.BytesIO(data)))) for name, _, data in files]
  greys = [(name, x if quality.is_grey8(x) else perceptual.to_grey(x)) for name, x in decoded]
  summaries = {name: quality.summarise(g) for name, g in greys}
  fps = {name: perceptual.fingerprint(g) for name, g in greys}
  fp_ms = per_item_ms(lambda ng: perceptual.fingerprint(ng[1]), greys)
  summary_ms = per_item_ms(lambda ng: quality.summarise(ng[1]), greys)
  quality_ms = per_item_ms(lambda ng: quality.measure(
      ng[1], ng[1].shape[1], ng[1].shape[0], 'L', summaries[ng[0]]), greys)
  grey_ms = per_item_ms(lambda nx: perceptual.to_grey(nx[1]), decoded)
  properties_ms = per_item_ms(lambda ng: shortcut.properties(
      ng[1], ng[1].shape[1], ng[1].shape[0], 'L', 8, 'png', summaries[ng[0]]), greys)
  facts_ms = per_item_ms(lambda nx: image_facts.measure(
      nx[1], nx[1].shape[1], nx[1].shape[0], 'L', 8, 'png'), decoded)
  start = time.perf_counter()
  groups = near_duplicates.group_pairs(fps)
  group_s = time.perf_counter() - start
  return dict(score(groups, origin), fingerprint_ms=fp_ms, summary_ms=summary_ms,
              quality_ms=quality_ms, to_grey_ms=grey_ms, properties_ms=properties_ms,
              image_facts_ms=facts_ms, grouping_seconds=group_s,
              grey8_share=sum(quality.is_grey8(x) for _, x in decoded) / len(decoded),
              mean_pixels=float(np.mean([g.shape[0] * g.shape[1] for _, g in greys])))


def with_imagehash(files, origin) -> Dict[str, object]:
  import imagehash  # dev lock only: a bench peer
  images = [(name, Image.open(io.BytesIO(data))) for name, _, data in files]
  for _, im in images:
    im.load()
  hashes = {name: int(str(imagehash.phash(im)), 16) for name, im in images}
  ms = per_item_ms(lambda ni: imagehash.phash(ni[1]), images)
  out = {'phash_ms': ms}
  for label, limit in (('exact', 0), (f'hamming_le_{HAMMING}', HAMMING)):
    names = sorted(hashes)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
             if perceptual.hamming(hashes[a], hashes[b]) <= limit]
    out[label] = score(near_duplicates.components(pairs), origin)
  return out


def with_cleanvision(files, origin) -> Dict[str, object]:
  from cleanvision import Imagelab  # dev lock only: a bench peer
  folder = tempfile.mkdtemp(prefix='cv-')
  try:
    for name, _, data in files:
      ext = 'jpg' if data[:2] == b'\xff\xd8' else 'png'
      with open(os.path.join(folder, f'{name}.{ext}'), 'wb') as f:
        f.write(data)
    start = time.perf_counter()
    lab = Imagelab(data_path=folder)
    lab.find_issues(n_jobs=1, verbose=False)
    seconds = time.perf_counter() - start
    sets = lab.info['near_duplicates']['sets'] + lab.info['exact_duplicates']['sets']
    groups = [[os.path.splitext(os.path.basename(p))[0] for p in s] for s in sets]
    pairs = [(a, b) for g in groups for i, a in enumerate(g) for b in g[i + 1:]]
    return dict(score(near_duplicates.components(pairs), origin),
                ms_per_image_all_checks=seconds / len(files) * 1e3)
  finally:
    shutil.rmtree(folder, ignore_errors=True)


def planted_set(name: str, originals: List[np.ndarray], copies_of: int, seed: int):
  files = plant(originals, copies_of, seed)
  origin = {n: o for n, o, _ in files}
  return {'originals': len(originals), 'copies': len(files) - len(originals),
          'ours': ours(files, origin), 'imagehash_phash': with_imagehash(files, origin),
          'cleanvision': with_cleanvision(files, origin), 'name': name}


def demo_originals(scale: float, seed: int) -> List[np.ndarray]:
  from pipeline import demo_data
  out = tempfile.mkdtemp(prefix='nd-demo-')
  try:
    ds = demo_data.generate(out, scale=scale, seed=seed)
    with open(ds.csv_path, encoding='utf-8') as f:
      rows = list(csv.DictReader(f))
    return [np.asarray(Image.open(os.path.join(ds.root, r['image_path']))) for r in rows]
  finally:
    shutil.rmtree(out, ignore_errors=True)


def scale_dataset(work_dir: str, records: int, seed: int) -> Tuple[str, List[Dict[str, str]]]:
  """Demo data with at least ``records`` rows, generated once under work_dir (this generator's
  own cache: bench.run's may hold an older generator's images) -> (root, first rows)."""
  from pipeline import demo_data
  scale = 1.0 if records >= 21165 else round(records / 21165 + 0.0005, 3)
  root = os.path.join(work_dir, f'nd-demo-s{scale}-seed{seed}')
  if not os.path.exists(os.path.join(root, '.complete')):
    shutil.rmtree(root, ignore_errors=True)
    demo_data.generate(root, scale=scale, seed=seed, workers=2)
    open(os.path.join(root, '.complete'), 'w').close()
  with open(os.path.join(root, demo_data.CSV_NAME), encoding='utf-8') as f:
    return root, list(csv.DictReader(f))[:records]


def grouping_at_scale(records: int, work_dir: str, seed: int,
                      planted: List[Tuple[str, str, bytes]], planted_scale: float
                      ) -> Dict[str, object]:
  """Fingerprints of ``records`` demo images plus the demo set's planted copies (their
  originals are the first rows of each class, so they are in the set): candidate pairs, copies
  found, distinct renders grouped, and the time of group_pairs in memory and of
  NearDuplicateGroups on the DirectRunner."""
  from pipeline import demo_data
  root, rows = scale_dataset(work_dir, records, seed)
  fps: Dict[str, perceptual.Fingerprint] = {}
  for r in rows:
    fps[r['image_path']] = perceptual.fingerprint(
        np.asarray(Image.open(os.path.join(root, r['image_path']))))
  # The planted set's originals o<i> are the demo images <class>-<n> at its scale, in order.
  counts = demo_data.class_counts_for_scale(planted_scale)
  names = [f'{c}-{n}' for c in demo_data.CLASS_COUNTS for n in range(1, counts[c] + 1)]
  path_of = {os.path.basename(r['image_path'])[:-4]: r['image_path'] for r in rows}
  origin = {k: k for k in fps}
  for name, orig, data in planted:
    target = path_of.get(names[int(orig[1:])])
    if name.startswith('c') and target:
      fps[name] = perceptual.fingerprint(np.asarray(Image.open(io.BytesIO(data))))
      origin[name] = target
  buckets = near_duplicates.candidate_buckets(fps)
  sizes = [len(v) for v in buckets.values()]
  crop_checks = sum(len(near_duplicate_pairs.crop_candidates([fp for _, fp in members])[0])
                    for members in buckets.values())
  memory_s = float('inf')
  for _ in range(PASSES):
    start = time.perf_counter()
    groups = near_duplicates.group_pairs(fps)
    memory_s = min(memory_s, time.perf_counter() - start)
  found = score(groups, origin)
  beam = _beam_seconds(fps, work_dir)
  pairs = near_duplicates.candidate_pairs(sizes)
  return {'records': len(rows), 'planted_copies': len(fps) - len(rows), 'buckets': len(sizes),
          'largest_bucket': max(sizes), 'candidate_pairs': pairs,
          'crop_candidate_pairs': crop_checks,
          'groups': len(groups), 'copies_found': found,
          'group_pairs_seconds': memory_s, **beam,
          'paper_1m': _paper(len(fps), pairs + crop_checks, memory_s)}


def _beam_seconds(fps, work_dir: str) -> Dict[str, float]:
  """NearDuplicateGroups' own time on the DirectRunner (in_memory): a pipeline that reads the
  fingerprints from a text file and runs it, minus the same pipeline without it (reading,
  parsing and counting: what ImageExampleGen's job has anyway); the fastest of PASSES each."""
  import apache_beam as beam
  path = os.path.join(work_dir, 'nd-fingerprints.txt')
  with open(path, 'w', encoding='utf-8') as f:
    f.writelines(f'{k}\t{fp.to_text()}\n' for k, fp in fps.items())
  times = {'beam_seconds': float('inf'), 'beam_baseline_seconds': float('inf')}
  for _ in range(PASSES):  # alternating, the fastest of each kept
    for label, with_groups in (('beam_seconds', True), ('beam_baseline_seconds', False)):
      start = time.perf_counter()
      with beam.Pipeline() as p:
        pcoll = (p | 'Read' >> beam.io.ReadFromText(path)
                 | 'Parse' >> beam.Map(lambda line: tuple(line.split('\t', 1))))
        if with_groups:
          pcoll = pcoll | 'Groups' >> near_duplicates.NearDuplicateGroups()
        _ = pcoll | beam.combiners.Count.Globally()
      times[label] = min(times[label], time.perf_counter() - start)
  os.remove(path)
  times['beam_grouping_seconds'] = times['beam_seconds'] - times['beam_baseline_seconds']
  return times


def _paper(n: int, pairs: int, seconds: float) -> Dict[str, object]:
  """1M images: at that size nearly every bucket is over MAX_BUCKET, so each of the BANDS
  memberships of an image costs at most WINDOW direct pairs and CROP_NEIGHBOURS crop checks per
  larger size class (one for a dataset of one size plus its crops): N * BANDS * (WINDOW +
  CROP_NEIGHBOURS); the work per pair as measured here (which includes the crop screen)."""
  bound = 1_000_000 * perceptual.BANDS * (near_duplicates.WINDOW
                                          + near_duplicate_pairs.CROP_NEIGHBOURS)
  return {'candidate_pairs_bound': bound, 'measured_pairs_per_image': round(pairs / n, 1),
          'seconds_one_core_estimate': round(seconds / max(pairs, 1) * bound, 1),
          'union_find_keys_at_5_percent': 50_000}


def _worker_ms(o: Dict[str, float]) -> float:
  """Fingerprint + quality measures, as the target counts them."""
  return o['fingerprint_ms'] + o['summary_ms'] + o['quality_ms']


def markdown(report) -> str:
  lines = ['# Near duplicates', '',
           f"Run {report['date']}; load average at start "
           f"{', '.join(f'{x:.2f}' for x in report['load_average'])} (2 cores, shared: absolute "
           'times are inflated; ratios come from one run).', '',
           '| set | method | copies found | recall | false pairs | ms per image |',
           '|---|---|---:|---:|---:|---:|']
  for s in report['sets']:
    o, ih, cv = s['ours'], s['imagehash_phash'], s['cleanvision']
    rows = [('cxr-tfx (fingerprint)', o, o['fingerprint_ms']),
            ('imagehash phash, exact', ih['exact'], ih['phash_ms']),
            (f'imagehash phash, Hamming <= {HAMMING}', ih[f'hamming_le_{HAMMING}'],
             ih['phash_ms']),
            ('CleanVision 0.3.7 (all its checks)', cv, cv['ms_per_image_all_checks'])]
    for method, r, ms in rows:
      lines.append(f"| {s['name']} ({s['originals']} + {s['copies']}) | {method} | "
                   f"{r['found']}/{r['copies']} | {r['recall']:.0%} | {r['false_pairs']} | "
                   f'{ms:.2f} |')
  lines += ['', 'Copies found by kind (ours): ' + '; '.join(
      f"{s['name']}: " + ', '.join(f'{k} {v}' for k, v in s['ours']['by_kind'].items())
      for s in report['sets']), '',
            'Worker cost per image, already decoded (ours, as image_facts.measure pays it: '
            'uint8 grey as decoded, other layouts through to_grey; the fastest of '
            f'{COST_PASSES} passes): '
            + '; '.join(f"{s['name']} (~{s['ours']['mean_pixels'] ** 0.5:.0f} px a side, "
                        f"{s['ours']['grey8_share']:.0%} uint8 grey): "
                        f"to_grey {s['ours']['to_grey_ms']:.3f} ms (other layouts only), "
                        f"fingerprint {s['ours']['fingerprint_ms']:.3f} ms, quality.summarise "
                        f"{s['ours']['summary_ms']:.3f} ms, quality.measure "
                        f"{s['ours']['quality_ms']:.3f} ms, shortcut.properties "
                        f"{s['ours']['properties_ms']:.3f} ms; fingerprint + quality "
                        f"(summarise + measure) "
                        f"{_worker_ms(s['ours']):.3f} ms; "
                        f"image_facts.measure, all of it with the texts "
                        f"{s['ours']['image_facts_ms']:.3f} ms" for s in report['sets']), '']
  g = report.get('grouping')
  if g:
    lines += [f"## Grouping at {g['records']:,} records", '',
              f"{g['records']:,} demo images and the demo set's {g['planted_copies']} planted "
              f"copies: {g['buckets']:,} buckets, largest {g['largest_bucket']}, "
              f"{g['candidate_pairs']:,} direct candidate pairs and "
              f"{g['crop_candidate_pairs']:,} crop checks; {g['groups']} groups; "
              f"copies found {g['copies_found']['found']}/{g['copies_found']['copies']} ("
              + ', '.join(f'{k} {v}' for k, v in g['copies_found']['by_kind'].items())
              + f"); pairs of distinct images grouped {g['copies_found']['false_pairs']}. "
              f"group_pairs in memory "
              f"{g['group_pairs_seconds']:.2f} s; NearDuplicateGroups on the DirectRunner "
              f"{g['beam_grouping_seconds']:.2f} s over the same pipeline without it "
              f"({g['beam_seconds']:.2f} s against {g['beam_baseline_seconds']:.2f} s).", '',
              f"On paper at 1M: at most {g['paper_1m']['candidate_pairs_bound']:,} candidate "
              "pairs (N x BANDS x (WINDOW + CROP_NEIGHBOURS): every bucket over MAX_BUCKET, one "
              f"larger size class per image; measured here "
              f"{g['paper_1m']['measured_pairs_per_image']} per image), ~"
              f"{g['paper_1m']['seconds_one_core_estimate']} s of checks on one core at this "
              "rate, spread over the workers by bucket; the union-find holds only keys in "
              'confirmed pairs (50,000 at 5% near-duplicates: ~10 MB).', '']
  return '\n'.join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--scale', type=float, default=0.01)
  parser.add_argument('--other', type=int, default=200, help='images of the second generator')
  parser.add_argument('--copies-of', type=int, default=10)
  parser.add_argument('--grouping-records', type=int, default=21165, help='0: skip')
  parser.add_argument('--work-dir', default='bench/work')
  parser.add_argument('--out', default='bench/results')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  load = os.getloadavg()
  sets = [planted_set('demo', demo_originals(args.scale, args.seed), args.copies_of, args.seed),
          planted_set('other anatomy', [render_other(n, args.seed) for n in range(args.other)],
                      args.copies_of, args.seed + 1)]
  report = {'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'load_average': load, 'sets': sets, 'argv': sys.argv[1:]}
  if args.grouping_records:
    demo = demo_originals(args.scale, args.seed)
    report['grouping'] = grouping_at_scale(args.grouping_records, args.work_dir, args.seed,
                                           plant(demo, args.copies_of, args.seed), args.scale)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'near_duplicates.json'), 'w', encoding='utf-8') as f:
    json.dump(report, f, indent=2)
  text = markdown(report)
  with open(os.path.join(args.out, 'near_duplicates.md'), 'w', encoding='utf-8') as f:
    f.write(text)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
