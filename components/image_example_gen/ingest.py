"""ImageExampleGen's work: the launcher lists the rows; Beam workers hash every image, one step
deals them to shards by content, then workers read, check and write every image and mask.

Launcher (the executor process, ``run_ingest``): reads the CSV and the class mapping and
nothing else -- it parses and validates the index (columns, classes, duplicate keys, paths
inside the allowed roots by name) and writes the rows as data, one JSON line per *chunk* (a run
of at most ``CHUNK_ROWS`` rows, by key) under ``<examples>/.staging/``. No image or mask is
opened, stat'ed or hashed there, so its memory grows only with the CSV.

The job (``IngestImages``):

1. Check pass (``CheckRowsFn``): the one read and check of every file. Each worker reads its
   chunk's images and masks once, checks them on the bytes read (confinement after symlinks,
   regular file, size, then the image check -- a full decode by default -- and the mask check;
   each file decoded at most once, and the image's facts measured on that decode), hashes them
   (a DICOM image is rendered: its key is the rendered PNG's hash) and serializes the row's
   record into the chunk's records file in staging. What reaches the deal is the row's key,
   label, hashes, group, problems, measures and where its record is: never bytes.
2. Deal (``plan_from_checks``, one element): duplicates policy, then ``assignment.assign`` --
   split membership by content, keeping the prior split manifest's (the one named by
   ``--split-manifest``, else the previous run's found in ML Metadata by the driver) -- and the
   next manifest written to staging.
3. Write pass (``WriteChunkFn``): chunks, not shards, are the unit of parallel work, so 10
   shards still keep 100 workers busy. For each planned chunk a worker copies its rows'
   records, in write order, into the chunk's piece file. Pieces are gzip members; a shard file
   is its pieces concatenated in order (a valid multi-member gzip that TensorFlow, Beam and TFDV
   read as one stream), so the bytes depend only on the plan, never on the runner or its
   bundling.

No image is read or decoded twice, and what is written is the bytes that were checked.

The index is a CSV or an image folder (``index.Source``): the launcher lists a folder by name
(``folders.py``) as it would read a CSV, and writes the listing (``image_index.csv``) and the
class mapping (``class_mapping.json``) next to the outputs.

DICOM files are rendered by the workers from the bytes they read (``dicom.py`` via
``files.read_image``): the rendered PNG is what is checked, hashed (``image_sha256``, so
identical DICOM files, or files whose pixels render identically, are duplicates) and written,
with the ``dicom_*`` features; the DICOM facts are counted per chunk into the summary.

The job's results (per-shard counts, bad rows, duplicate groups, the deal's membership report)
come back as one manifest file the job writes; the launcher reconciles rows in = examples
written + rows quarantined from it (not from metrics, which portable runners may not commit),
then publishes the staged shards into ``Split-<name>/`` and the split manifest
(``split_manifest.json``) by rename. Staging is removed whatever happens.
"""
import collections
import concurrent.futures
import dataclasses
import gzip
import hashlib
import json
import os
import shutil
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from absl import logging
import apache_beam as beam
import tensorflow as tf

from components import features
from components.errors import CxrError
from components.image_example_gen import assignment
from components.image_example_gen import dicom as dicom_lib
from components.image_example_gen import duplicates as duplicates_lib
from components.image_example_gen import files
from components.image_example_gen import findings as findings_lib
from components.image_example_gen import index
from components.image_example_gen import mask_check as mask_check_lib
from components.image_example_gen import near_duplicates as near_duplicates_lib
from components.image_example_gen import perceptual
from components.image_example_gen import shard_sizing
from components.image_example_gen import staging as staging_lib
from components.image_example_gen.config import DUPLICATES_FAIL
from components.image_example_gen.config import GROUP_ASSIGNMENT_STABLE
from components.image_example_gen.config import IngestConfig
from components.image_example_gen.config import NEAR_DUPLICATES_GROUP
from components.image_example_gen.config import NEAR_DUPLICATES_OFF
from components.image_example_gen.config import SplitSpec
from components.image_example_gen.config import VERIFY_FULL
from components.image_example_gen.config import VERIFY_HEADER
from components.image_example_gen.summary import CLASS_MAPPING_FILE
from components.image_example_gen.summary import GROUP_SPLITS_FILE
from components.image_example_gen.summary import IMAGE_INDEX_FILE
from components.image_example_gen.summary import IngestSummary
from components.image_example_gen.summary import QUARANTINE_FILE
from components.image_example_gen.summary import SPLIT_FINGERPRINTS_FILE
from components.image_example_gen.summary import SPLIT_MANIFEST_FILE
from components.image_example_gen.summary import SUMMARY_FILE

SPLIT_DIR_PREFIX = 'Split-'  # TFX's layout: <examples uri>/Split-<name>/
# Rows per unit of parallel work. ~128 x 47 KB = 6 MB per piece: enough to amortise per-element
# overhead, small enough that 21k rows make ~170 work items. Part of the output format: the
# shard bytes (their gzip members) depend on it.
CHUNK_ROWS = 128
# Threads per worker reading and checking a chunk's rows in the check pass (CheckRowsFn), by
# verify level. A full decode (libpng, libjpeg), file reads and sha256 release the GIL, so with
# verify=full the checks of the next rows overlap the serializing of this one; verify=header's
# checks are mostly Python (header parse, chunk walk) and threads only contend for the GIL.
# Measured at 21,165 records on 2 idle cores (in_memory, wall): verify=header 19-24 s inline
# against 25 s with 2 threads (and 35% more CPU); verify=full 61 s with 3 threads against 66 s
# with 2, for a quarter more CPU, so 2.
CHECK_THREADS = {VERIFY_FULL: 2, VERIFY_HEADER: 1}
METRICS_NAMESPACE = 'ImageExampleGen'
ROWS_CHECKED = 'rows_checked'
EXAMPLES_WRITTEN = 'examples_written'
BAD_ROWS = 'bad_rows'
# A gzip container with zlib level 0 (stored blocks): stock TFX/TFDV/tf.data readers read it as
# GZIP, but nothing is deflated. PNG payloads do not compress (level 1 saved 0.01% of the bytes
# in bench/) while deflating them cost ~0.8 ms per 47 KB record, 12x the rest of the write.
TFRECORD_OPTIONS = dict(compression_type='GZIP', compression_level=0)

# Manifest entry kinds.
SHARD = 'shard'
PROBLEM = 'problem'  # a bad row
DROPPED = 'dropped'  # a duplicate dropped by duplicates=drop: quarantined, not a failure
DUPLICATE = 'duplicate'
GROUP_SPLITS = 'group_splits'  # {group hash: split} of every group (with a group column)
MEMBERSHIP = 'membership'  # the deal's report: images kept from the prior manifest, new, ...
NEAR_DUPLICATE = 'near_duplicate'  # a near-duplicate group (findings.near_duplicate_entries)
QUALITY = 'quality'  # image-quality findings per split and class (findings.quality_entry)
SHORTCUT = 'shortcut'  # shortcut-risk assessment (findings.shortcut_entry)
SHARD_FILES = 'shard_files'  # --shard-size: each split's file count (shard_sizing.FilePlan)
ERROR = 'error'


class ReconciliationError(CxrError, RuntimeError):
  """Rows in != examples written + rows quarantined: something was lost on the way."""


def split_uri(examples_uri: str, split: str) -> str:
  return files.join_uri(examples_uri, f'{SPLIT_DIR_PREFIX}{split}')


# --- The plan as data -------------------------------------------------------------------------

_ROW_FIELDS = ('line', 'image_id', 'image_path', 'mask_path', 'label', 'class_name', 'group',
               'image_sha256', 'image_as_written', 'mask_as_written', 'mask_sha256',
               'mask_findings', 'fingerprint', 'measures', 'size', 'record', 'dicom_counts')


def row_to_list(row: index.IndexRow) -> List[Any]:
  return [getattr(row, f) for f in _ROW_FIELDS]


def row_from_list(values: Sequence[Any]) -> index.IndexRow:
  fields = dict(zip(_ROW_FIELDS, values))
  fields['mask_findings'] = tuple(fields.get('mask_findings', ()))
  return index.IndexRow(**fields)


@dataclasses.dataclass(frozen=True)
class Chunk:
  """Consecutive rows of one shard in write order (``split`` '' before assignment)."""
  split: str
  shard: int
  num_shards: int
  chunk: int
  rows: Tuple[index.IndexRow, ...]

  @property
  def shard_key(self) -> Tuple[str, int]:
    return self.split, self.shard

  @property
  def file_name(self) -> str:
    return assignment.Shard(self.split, self.shard, self.num_shards, ()).file_name

  def to_json(self) -> str:
    return json.dumps([self.split, self.shard, self.num_shards, self.chunk,
                       [row_to_list(r) for r in self.rows]], separators=(',', ':'))

  @classmethod
  def from_json(cls, line: str) -> 'Chunk':
    split, shard, num_shards, chunk, rows = json.loads(line)
    return cls(split, shard, num_shards, chunk, tuple(row_from_list(r) for r in rows))


def chunk_shards(shards: Sequence[assignment.Shard], chunk_rows: int = 0,
                 light: bool = False) -> List[Chunk]:
  """Each shard's rows, in write order, cut into runs of at most ``chunk_rows``
  (default CHUNK_ROWS). ``light``: without the rows' measures (the write pass needs none)."""
  chunk_rows = chunk_rows or CHUNK_ROWS
  strip = (lambda rows: tuple(dataclasses.replace(r, measures='') for r in rows)) if light else (
      lambda rows: rows)
  return [Chunk(s.split, s.index, s.num_shards, c, strip(s.rows[start:start + chunk_rows]))
          for s in shards
          for c, start in enumerate(range(0, max(len(s.rows), 1), chunk_rows))]


def unassigned_chunks(rows: Sequence[index.IndexRow], chunk_rows: int = 0) -> List[Chunk]:
  """Rows for the check pass, by key, before any shard is known."""
  chunk_rows = chunk_rows or CHUNK_ROWS
  rows = sorted(rows, key=lambda r: r.image_id)
  return [Chunk('', -1, 0, c, tuple(rows[start:start + chunk_rows]))
          for c, start in enumerate(range(0, len(rows), chunk_rows))]


# --- Per-row work (workers) -------------------------------------------------------------------

def make_example(row: index.IndexRow, image: bytes, mask: bytes,
                 dicom: Optional[dicom_lib.DicomInfo] = None,
                 group_hash: str = '') -> tf.train.Example:
  """The seed's record (image, mask, class) plus the key image_id and the hash image_sha256;
  with a DICOM image its four dicom_* facts, with a group its salted hash, when measured its
  perceptual fingerprint (features.OPTIONAL)."""
  feature = tf.train.Feature
  values = {
      features.IMAGE: feature(bytes_list=tf.train.BytesList(value=[image])),
      features.MASK: feature(bytes_list=tf.train.BytesList(value=[mask])),
      features.LABEL: feature(int64_list=tf.train.Int64List(value=[row.label])),
      features.IMAGE_ID: feature(bytes_list=tf.train.BytesList(
          value=[row.image_id.encode('utf-8')])),
      features.IMAGE_SHA256: feature(bytes_list=tf.train.BytesList(
          value=[row.image_sha256.encode('ascii')])),
  }
  if dicom is not None:
    values[features.DICOM_TRANSFER_SYNTAX] = feature(bytes_list=tf.train.BytesList(
        value=[dicom.transfer_syntax.encode('ascii')]))
    values[features.DICOM_PHOTOMETRIC] = feature(bytes_list=tf.train.BytesList(
        value=[dicom.photometric.encode('ascii')]))
    values[features.DICOM_BITS_STORED] = feature(int64_list=tf.train.Int64List(
        value=[dicom.bits_stored]))
    if dicom.pixel_spacing:
      values[features.DICOM_PIXEL_SPACING] = feature(float_list=tf.train.FloatList(
          value=list(dicom.pixel_spacing)))
  if group_hash:
    values[features.GROUP_HASH] = feature(bytes_list=tf.train.BytesList(
        value=[group_hash.encode('ascii')]))
  if row.fingerprint:
    values[features.IMAGE_FINGERPRINT] = feature(bytes_list=tf.train.BytesList(
        value=[row.fingerprint.encode('ascii')]))
  return tf.train.Example(features=tf.train.Features(feature=values))


def _problem(row: index.IndexRow, loaded: files.LoadedRow) -> index.Problem:
  return index.Problem.of(row.line, [(row.as_written(p), r) for p, r in loaded.problems])


def load_and_hash(row: index.IndexRow, options: files.CheckOptions
                  ) -> Tuple[index.IndexRow, files.LoadedRow]:
  """Reads and checks a row's files once -> (the row with what the check learnt: its image's
  sha256, its mask's sha256 and findings, its image's facts with ``options.facts``, its files'
  size and DICOM counts, and for a group read from DICOM headers its hashed group; what was
  read)."""
  loaded = files.load_row(row.image_path, row.mask_path, options)
  if loaded.problems:
    return row, loaded
  facts = loaded.facts
  dicom_counts: Dict[str, Dict[str, int]] = {}
  for what, info in (('image', loaded.image_dicom), ('mask', loaded.mask_dicom)):
    if info is not None:
      dicom_lib.count_into(dicom_counts, what, info)
  return dataclasses.replace(
      row, image_sha256=hashlib.sha256(loaded.image).hexdigest(),
      group=loaded.image_dicom.group_hash if options.group_keyword else row.group,
      mask_sha256=hashlib.sha256(loaded.mask).hexdigest() if loaded.mask else '',
      mask_findings=loaded.mask_findings,
      fingerprint=facts.fingerprint if facts else '',
      measures=facts.encode() if facts else '',
      size=len(loaded.image) + len(loaded.mask),
      dicom_counts=json.dumps(dicom_counts, sort_keys=True) if dicom_counts else ''), loaded


def _member(row: index.IndexRow, split: str) -> Dict[str, Any]:
  return dict(image_id=row.image_id, line=row.line, class_name=row.class_name, split=split)


class _Inline:
  map = map  # the builtin: rows read in this thread


FINGERPRINTS = 'fingerprints'  # CheckRowsFn's tagged output


def records_file(staging_dir: str, chunk: int, rows: int) -> str:
  return files.join_uri(staging_dir, staging_lib.RECORDS_DIR,
                        staging_lib.records_name(chunk, rows))


class CheckRowsFn(beam.DoFn):
  """Check pass: the one read and check of every file. Chunk (unassigned) -> per row ('ok', row
  list) or ('bad', problem dict), no bytes. Each row's image and mask are read once, checked
  on the bytes read (each decoded at most once: the image's check, the mask check, and with
  ``options.facts`` the image's fingerprint, quality measures and properties, all from one
  decode), hashed, and serialized into its record, which goes into the chunk's records file in
  staging (``records_file``); the row carries where (``record``: chunk, offset, length). The
  deal then knows every row's content, problems and near-duplicates, and the write pass only
  copies records into shards: no file is read or decoded twice, and what is written is the bytes
  that were checked. Rows are checked on a small thread pool (CHECK_THREADS: decoders release
  the GIL) while this thread serializes.

  A measured image's fingerprint leaves its row here: it goes out on the FINGERPRINTS output as
  (sha256, fingerprint text), to the grouping; it is already in the record, so the deal never
  holds it (~1.4 KB per row, most of a row's size)."""

  def __init__(self, staging_dir: str, options: files.CheckOptions):
    self._staging_dir = staging_dir
    self._options = options
    self._pool = None
    self._checked = beam.metrics.Metrics.counter(METRICS_NAMESPACE, ROWS_CHECKED)
    self._bad = beam.metrics.Metrics.counter(METRICS_NAMESPACE, BAD_ROWS)

  def setup(self):
    threads = CHECK_THREADS[self._options.verify]
    if threads > 1:
      self._pool = concurrent.futures.ThreadPoolExecutor(threads)

  def teardown(self):
    if self._pool is not None:
      self._pool.shutdown()

  def process(self, chunk: Chunk):
    path = records_file(self._staging_dir, chunk.chunk, len(chunk.rows))
    tf.io.gfile.makedirs(os.path.dirname(path))
    offset = 0
    with tf.io.gfile.GFile(path, 'wb') as out:
      for row, loaded in (self._pool or _Inline).map(lambda r: load_and_hash(r, self._options),
                                                      chunk.rows):
        self._checked.inc()
        if loaded.problems:
          self._bad.inc()
          yield 'bad', _problem(row, loaded).to_dict()
          continue
        record = make_example(
            row, loaded.image, loaded.mask, loaded.image_dicom,
            files.written_group(row.group, self._options)).SerializeToString(deterministic=True)
        out.write(record)
        if row.fingerprint:
          yield beam.pvalue.TaggedOutput(FINGERPRINTS, (row.image_sha256, row.fingerprint))
        yield 'ok', row_to_list(dataclasses.replace(
            row, record=f'{chunk.chunk}:{offset}:{len(record)}', fingerprint=''))
        offset += len(record)


def fingerprints_file(manifest_uri: str) -> str:
  """The fingerprints published next to a split manifest (SPLIT_FINGERPRINTS_FILE)."""
  return files.join_uri(os.path.dirname(manifest_uri), SPLIT_FINGERPRINTS_FILE)


STALE_FINGERPRINTS = 'stale_fingerprints'  # PriorFingerprintsFn's tagged output (and entry)


class PriorFingerprintsFn(beam.DoFn):
  """A split manifest's URI -> (sha256, fingerprint text) of every image published with it
  (its SPLIT_FINGERPRINTS_FILE, streamed by the worker: never pickled into the graph, never
  held whole); nothing when it has none (a manifest from --verify header runs). Texts of an
  older fingerprint version (published by an earlier cxr-tfx) cannot be compared: they are left
  out, and their count goes out on the STALE_FINGERPRINTS output, so the run reports it."""

  def process(self, manifest_uri: str):
    path = fingerprints_file(manifest_uri)
    if not tf.io.gfile.exists(path):
      return
    stale = 0
    with tf.io.gfile.GFile(path, 'rb') as raw, gzip.GzipFile(fileobj=raw) as f:
      for line in f:
        entry = json.loads(line)
        if perceptual.is_current(entry['fingerprint']):
          yield entry['sha256'], entry['fingerprint']
        else:
          stale += 1
    if stale:
      yield beam.pvalue.TaggedOutput(STALE_FINGERPRINTS, (STALE_FINGERPRINTS, stale))


def _fingerprint_line(kv: Tuple[str, str]) -> str:
  return json.dumps(dict(sha256=kv[0], fingerprint=kv[1]), sort_keys=True)


def group_splits(shards: Sequence[assignment.Shard], options: files.CheckOptions
                 ) -> Dict[str, str]:
  """{written group hash: split} over the planned rows ({} without groups): what
  ``group_splits.json`` records, so a later span can check that no group changed split."""
  return {files.written_group(r.group, options): s.split
          for s in shards for r in s.rows if r.group}


@dataclasses.dataclass(frozen=True)
class MembershipInput:
  """What the deal needs besides the check results: where the prior membership is (a split
  manifest URI, '' for none), this run's span, and where to write the next manifest."""
  prior_uri: str = ''
  span: int = 0
  manifest_out: str = ''


@dataclasses.dataclass(frozen=True)
class DealOptions:
  """What the deal does besides keeping membership: near-duplicate groups (off, report, group:
  dealt as one unit), the quality thresholds (a QualityThresholds) and the shortcut-risk
  threshold (balanced accuracy) for the images' facts, and the shard file size."""
  near_duplicates: str = NEAR_DUPLICATES_OFF
  quality_thresholds: Any = None
  shortcut_threshold: float = 0.0
  shard_size: int = 0  # bytes per shard file (--shard-size); 0: the --splits shard counts


def plan_from_checks(checks: List[Tuple[str, Any]], splits: Sequence[SplitSpec], seed: int,
                     duplicates: str, stable_groups: bool, options: files.CheckOptions,
                     membership: MembershipInput = MembershipInput(),
                     near_groups: Sequence[Sequence[str]] = (),
                     deal_options: DealOptions = DealOptions()
                     ) -> Iterable[Tuple[str, Any]]:
  """All check results (keys and hashes, no bytes) -> the write plan, in one step.

  Reads the prior split manifest (``membership.prior_uri``), deals (``assignment.assign``) and
  writes the next manifest (``membership.manifest_out``). Yields ('chunk', Chunk JSON) for the
  write stage, and manifest entries: ('problem', ...) for bad and dropped rows, ('duplicate',
  ...) for duplicate groups, ('group_splits', {group hash: split}) with groups,
  ('membership', report), ('near_duplicate', group) for each near-duplicate group
  (``near_groups``: sha256 lists, dealt as units when ``deal_options.near_duplicates`` is
  'group'), ('quality', ...) and ('shortcut', ...) from the rows' measures, ('error', message)
  when no plan is possible."""
  rows = [row_from_list(v) for kind, v in checks if kind == 'ok']
  for kind, v in checks:
    if kind == 'bad':
      yield PROBLEM, v
  kept, dropped, groups = duplicates_lib.apply_policy(rows, duplicates)
  for p in dropped:
    yield DROPPED, p.to_dict()
  if not kept:
    yield ERROR, 'no usable rows: every row is bad'
    return
  try:
    prior = assignment.load_manifest(membership.prior_uri) if membership.prior_uri else None
    result = assignment.assign(
        kept, splits, seed, stable_groups, prior=prior, span=membership.span,
        group_key=lambda r: files.written_group(r.group, options),
        group_salt_check=assignment.salt_check(options.group_salt),
        near_groups=(near_groups if deal_options.near_duplicates == NEAR_DUPLICATES_GROUP
                     else ()))
  except assignment.AssignmentError as e:
    yield ERROR, str(e)
    return
  if membership.manifest_out:
    _write_lines(membership.manifest_out, [result.manifest.to_json().rstrip('\n')])
  yield MEMBERSHIP, dict(result.report, manifest_images=len(result.manifest.images),
                         manifest_digest=result.manifest.digest())
  groups_of = group_splits(result.shards, options)
  if groups_of:
    yield GROUP_SPLITS, groups_of
  split_of = {r.image_id: s.split for s in result.shards for r in s.rows}
  for g in groups:
    yield DUPLICATE, dict(sha256=g.sha256, members=[_member(r, split_of.get(r.image_id, ''))
                                                    for r in g.rows])
  yield from _findings(kept, split_of, near_groups, prior, membership.span, seed,
                       deal_options)
  shards = result.shards
  if deal_options.shard_size:  # the same membership, cut into files of about that size
    sized = shard_sizing.plan(shards, deal_options.shard_size, bytes_of=lambda r: r.size)
    shards = shard_sizing.resize_all(shards, sized.files, seed)
    yield SHARD_FILES, dict(sized.as_dict(), described=sized.describe())
  for chunk in chunk_shards(shards, light=True):
    yield 'chunk', chunk.to_json()


def _findings(rows: Sequence[index.IndexRow], split_of: Dict[str, str],
              near_groups: Sequence[Sequence[str]], prior: Optional[assignment.SplitManifest],
              span: int, seed: int, deal_options: DealOptions
              ) -> Iterable[Tuple[str, Any]]:
  """The manifest entries of what the images' facts showed (findings.py)."""
  if deal_options.near_duplicates != NEAR_DUPLICATES_OFF:
    for entry in findings_lib.near_duplicate_entries(
        near_groups, rows, split_of, prior.images if prior is not None else {}, span):
      yield NEAR_DUPLICATE, entry
  if deal_options.quality_thresholds is not None and any(r.measures for r in rows):
    yield QUALITY, findings_lib.quality_entry(rows, split_of, deal_options.quality_thresholds)
    shortcut = findings_lib.shortcut_entry(rows, seed, deal_options.shortcut_threshold)
    if shortcut is not None:
      yield SHORTCUT, shortcut


@dataclasses.dataclass
class ChunkResult:
  """What writing one chunk produced: its piece file and what it holds (bad rows were left out
  by the check pass)."""
  split: str
  shard: int
  num_shards: int
  chunk: int
  piece: str
  count: int
  class_counts: Dict[int, int]
  # mask_check: {class name: {count key: n}} over the written rows, and the first few findings
  mask_counts: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)
  mask_findings: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
  # DICOM files among the written rows: {category: {key: n}} (dicom.count_into)
  dicom_counts: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)




class RecordReader:
  """Reads records back from the check pass's records files by ``IndexRow.record``, keeping each
  file open while a chunk is copied (local files by ``os.pread``, URIs through tf.io.gfile)."""

  def __init__(self, staging_dir: str):
    self._staging_dir = staging_dir
    self._open: Dict[int, Any] = {}
    self._names: Optional[Dict[int, str]] = None

  def _path(self, chunk: int) -> str:
    if self._names is None:  # records_name carries the chunk's row count: list the folder once
      folder = files.join_uri(self._staging_dir, staging_lib.RECORDS_DIR)
      self._names = {int(n.split('-', 1)[0]): n for n in tf.io.gfile.listdir(folder)}
    return files.join_uri(self._staging_dir, staging_lib.RECORDS_DIR, self._names[chunk])

  def read(self, record: str) -> bytes:
    chunk, offset, length = (int(x) for x in record.split(':'))
    handle = self._open.get(chunk)
    if handle is None:
      path = self._path(chunk)
      handle = self._open[chunk] = (tf.io.gfile.GFile(path, 'rb') if files.is_uri(path)
                                    else os.open(path, os.O_RDONLY))
    if isinstance(handle, int):
      data = os.pread(handle, length, offset)
    else:
      handle.seek(offset)
      data = handle.read(length)
    if len(data) != length:
      raise IOError(f'short read of record {record} in {self._path(chunk)}')
    return data

  def close(self) -> None:
    for handle in self._open.values():
      if isinstance(handle, int):
        os.close(handle)
      else:
        handle.close()
    self._open = {}


class WriteChunkFn(beam.DoFn):
  """Chunk (planned) -> one piece file: each row's record, serialized by the check pass, copied
  in the chunk's order. Yields a ChunkResult with the chunk's counts."""

  def __init__(self, staging_dir: str):
    self._staging_dir = staging_dir
    self._written = beam.metrics.Metrics.counter(METRICS_NAMESPACE, EXAMPLES_WRITTEN)

  def process(self, chunk: Chunk):
    piece = files.join_uri(self._staging_dir, staging_lib.PIECES_DIR, staging_lib.piece_name(
        chunk.split, chunk.shard, chunk.chunk, len(chunk.rows)))
    tf.io.gfile.makedirs(os.path.dirname(piece))
    mask_counts, mask_findings, dicom_counts = {}, [], {}
    reader = RecordReader(self._staging_dir)
    try:
      with tf.io.TFRecordWriter(piece, tf.io.TFRecordOptions(**TFRECORD_OPTIONS)) as writer:
        for row in chunk.rows:
          writer.write(reader.read(row.record))
          self._written.inc()
          if row.mask_sha256:
            _count_mask(mask_counts, mask_findings, row, chunk.split, row.mask_findings)
          if row.dicom_counts:
            add_counts(dicom_counts, json.loads(row.dicom_counts))
    finally:
      reader.close()
    yield ChunkResult(chunk.split, chunk.shard, chunk.num_shards, chunk.chunk, piece,
                      len(chunk.rows), dict(collections.Counter(r.label for r in chunk.rows)),
                      mask_counts, mask_findings, dicom_counts)


MAX_MASK_FINDINGS = 20  # mask findings listed by row (per chunk, shard and summary); all counted


def _count_mask(counts: Dict[str, Dict[str, int]], listed: List[Dict[str, Any]],
                row: index.IndexRow, split: str, findings: Sequence[str]) -> None:
  by_class = counts.setdefault(row.class_name, mask_check_lib.new_counts())
  by_class[mask_check_lib.MASKS] += 1
  for code in findings:
    by_class[code] += 1
  if findings and len(listed) < MAX_MASK_FINDINGS:
    listed.append(dict(line=row.line, image_id=row.image_id, class_name=row.class_name,
                       split=split, findings=list(findings)))


def add_mask_counts(total: Dict[str, Dict[str, int]],
                    counts: Dict[str, Dict[str, int]]) -> Dict[str, Dict[str, int]]:
  """Adds {class name: {count key: n}} into total (returned)."""
  for class_name, by_key in counts.items():
    into = total.setdefault(class_name, mask_check_lib.new_counts())
    for key, n in by_key.items():
      into[key] = into.get(key, 0) + n
  return total


def add_counts(total: Dict[str, Dict[str, int]],
               counts: Dict[str, Dict[str, int]]) -> Dict[str, Dict[str, int]]:
  """Adds {category: {key: n}} into total (returned)."""
  for category, by_key in counts.items():
    into = total.setdefault(category, {})
    for key, n in by_key.items():
      into[key] = into.get(key, 0) + n
  return total


def concatenate(pieces: Sequence[str], target: str) -> int:
  """Appends the pieces' bytes into ``target`` in order -> bytes written. Local files copy in
  the kernel (``os.copy_file_range``); URIs stream through ``tf.io.gfile``."""
  tf.io.gfile.makedirs(os.path.dirname(target))
  if len(pieces) == 1:
    tf.io.gfile.rename(pieces[0], target, overwrite=True)
    return tf.io.gfile.stat(target).length
  total = 0
  if not files.is_uri(target) and hasattr(os, 'copy_file_range'):
    with open(target, 'wb') as out:
      for piece in pieces:
        with open(piece, 'rb') as src:
          left = os.fstat(src.fileno()).st_size
          while left:
            n = os.copy_file_range(src.fileno(), out.fileno(), left)
            if not n:
              raise IOError(f'short copy from {piece} into {target}')
            left -= n
            total += n
  else:
    with tf.io.gfile.GFile(target, 'wb') as out:
      for piece in pieces:
        with tf.io.gfile.GFile(piece, 'rb') as src:
          for block in iter(lambda src=src: src.read(1 << 22), b''):
            out.write(block)
            total += len(block)
  for piece in pieces:
    tf.io.gfile.remove(piece)
  return total


class AssembleShardFn(beam.DoFn):
  """(shard key, its chunks' results) -> the shard file in staging, pieces in chunk order.
  Yields the shard's manifest entry."""

  def __init__(self, staging_dir: str):
    self._staging_dir = staging_dir

  def process(self, keyed: Tuple[Tuple[str, int], Iterable[ChunkResult]]):
    (split, shard), results = keyed
    results = sorted(results, key=lambda r: r.chunk)
    name = assignment.Shard(split, shard, results[0].num_shards, ()).file_name
    size = concatenate([r.piece for r in results],
                       files.join_uri(self._staging_dir, f'{SPLIT_DIR_PREFIX}{split}', name))
    class_counts, mask_counts, dicom_counts = collections.Counter(), {}, {}
    for r in results:
      class_counts.update(r.class_counts)
      add_mask_counts(mask_counts, r.mask_counts)
      add_counts(dicom_counts, r.dicom_counts)
    findings = sorted((f for r in results for f in r.mask_findings), key=lambda f: f['line'])
    yield SHARD, dict(split=split, index=shard, file=name, count=sum(r.count for r in results),
                      bytes=size, class_counts=dict(sorted(class_counts.items())),
                      mask_counts=mask_counts, mask_findings=findings[:MAX_MASK_FINDINGS],
                      dicom_counts=dicom_counts)


@beam.ptransform_fn
def IngestImages(pipeline: beam.Pipeline, staging_dir: str, options: files.CheckOptions,  # pylint: disable=invalid-name
                 splits: Sequence[SplitSpec], seed: int, duplicates: str,
                 stable_groups: bool = False, membership: MembershipInput = MembershipInput(),
                 deal_options: DealOptions = DealOptions()) -> beam.pvalue.PDone:
  """The whole job: reads the unassigned plan; the check pass reads, checks, hashes and
  serializes every row once (its content decides its split; which rows exist, their groups and
  near-duplicates are known before the deal); groups near-duplicates; deals once over the
  results; copies the records into shards in staging; writes the manifest."""
  results = (
      pipeline
      # PCollection[str]: one JSON line per chunk of <= CHUNK_ROWS rows (ids, paths, labels).
      | 'ReadPlan' >> beam.io.ReadFromText(files.join_uri(staging_dir, staging_lib.PLAN_FILE))
      # PCollection[Chunk], not yet assigned to shards
      | 'ParseChunks' >> beam.Map(Chunk.from_json)
      | 'DistributeChecks' >> beam.Reshuffle()
      | 'CheckRows' >> beam.ParDo(CheckRowsFn(staging_dir, options)).with_outputs(
          FINGERPRINTS, main='checks'))
  # PCollection[('ok', row list with sha256, record location [and measures]) | ('bad', problem
  # dict)]: no bytes, no fingerprints.
  checked = results.checks
  # PCollection[(sha256, fingerprint text)]: this run's measured images, each image once.
  measured = results[FINGERPRINTS] | 'DistinctMeasured' >> beam.Distinct()
  near_groups: Any = []
  stale: Any = pipeline | 'NoStaleFingerprints' >> beam.Create([])
  if deal_options.near_duplicates != NEAR_DUPLICATES_OFF and options.facts:
    prior = (
        pipeline
        # PCollection[str]: the prior split manifest's URI (none without one)
        | 'PriorManifest' >> beam.Create([membership.prior_uri] if membership.prior_uri else [])
        # PCollection[(sha256, fingerprint text)] of the prior spans' images
        | 'PriorFingerprints' >> beam.ParDo(PriorFingerprintsFn()).with_outputs(
            STALE_FINGERPRINTS, main='fingerprints'))
    # PCollection[('stale_fingerprints', n)]: prior texts of an older version, left out
    stale = prior[STALE_FINGERPRINTS]
    prior = prior.fingerprints
    fingerprints = (
        (measured, prior)
        | 'AllFingerprints' >> beam.Flatten()
        # the same image in this run and a prior span once
        | 'DistinctFingerprints' >> beam.Distinct())
    near_groups = beam.pvalue.AsList(
        fingerprints
        # PCollection[List[sha256]]: each near-duplicate group's sorted members
        | 'NearDuplicateGroups' >> near_duplicates_lib.NearDuplicateGroups())  # pylint: disable=no-value-for-parameter
    _ = (fingerprints
         # PCollection[str]: one JSON line per image, published next to the split manifest
         | 'EncodeFingerprints' >> beam.Map(_fingerprint_line)
         | 'WriteFingerprints' >> beam.io.WriteToText(
             files.join_uri(staging_dir, SPLIT_FINGERPRINTS_FILE), num_shards=1,
             shard_name_template=''))
  planned = (
      checked
      # PCollection[list of all check results]: one element, keys, hashes, record locations and
      # measures only.
      | 'CollectChecks' >> beam.combiners.ToList()
      # PCollection[('chunk', Chunk JSON) | (manifest kind, entry)]
      | 'AssignShards' >> beam.FlatMap(plan_from_checks, splits=splits, seed=seed,
                                       duplicates=duplicates, stable_groups=stable_groups,
                                       options=options, membership=membership,
                                       near_groups=near_groups,
                                       deal_options=deal_options))
  written = (
      planned
      | 'PlannedChunks' >> beam.Filter(lambda kv: kv[0] == 'chunk')
      # PCollection[Chunk], now with shards and record locations.
      | 'ParsePlannedChunks' >> beam.Map(lambda kv: Chunk.from_json(kv[1]))
      | 'DistributeChunks' >> beam.Reshuffle()
      # PCollection[ChunkResult]: a piece file per chunk (its records copied), its counts.
      | 'WriteChunks' >> beam.ParDo(WriteChunkFn(staging_dir)))
  shards = (
      written
      # PCollection[((split, shard), ChunkResult)]
      | 'KeyByShard' >> beam.Map(lambda r: ((r.split, r.shard), r))
      | 'GroupByShard' >> beam.GroupByKey()
      # PCollection[('shard', entry)]: shard files complete in staging.
      | 'AssembleShards' >> beam.ParDo(AssembleShardFn(staging_dir)))
  _ = ((planned | 'PlanEntries' >> beam.Filter(lambda kv: kv[0] != 'chunk'), shards, stale)
       | 'Results' >> beam.Flatten()
       # PCollection[str]: one JSON line per manifest entry
       | 'EncodeResults' >> beam.Map(lambda kv: json.dumps(list(kv), sort_keys=True))
       | 'WriteManifest' >> beam.io.WriteToText(
           files.join_uri(staging_dir, staging_lib.MANIFEST_FILE), num_shards=1,
           shard_name_template=''))


# --- Launcher ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Manifest:
  """The job's results, as read back from its manifest file."""
  shards: List[Dict[str, Any]]
  problems: List[index.Problem]
  dropped: List[index.Problem]
  duplicates: List[Dict[str, Any]]  # [{sha256, members: [{image_id, line, class_name, split}]}]
  errors: List[str]
  group_splits: Dict[str, str] = dataclasses.field(default_factory=dict)  # the check pass's
  membership: Dict[str, Any] = dataclasses.field(default_factory=dict)  # the deal's report
  near_duplicates: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
  quality: Dict[str, Any] = dataclasses.field(default_factory=dict)
  shortcut: Dict[str, Any] = dataclasses.field(default_factory=dict)
  shard_files: Dict[str, Any] = dataclasses.field(default_factory=dict)
  stale_fingerprints: int = 0  # prior images whose fingerprints are of an older version

  @classmethod
  def read(cls, path: str) -> 'Manifest':
    out = cls([], [], [], [], [])
    with tf.io.gfile.GFile(path) as f:
      for line in f:
        kind, entry = json.loads(line)
        if kind == SHARD:
          out.shards.append(entry)
        elif kind == PROBLEM:
          out.problems.append(index.Problem.from_dict(entry))
        elif kind == DROPPED:
          out.dropped.append(index.Problem.from_dict(entry))
        elif kind == DUPLICATE:
          out.duplicates.append(entry)
        elif kind == GROUP_SPLITS:
          out.group_splits.update(entry)
        elif kind == MEMBERSHIP:
          out.membership = entry
        elif kind == NEAR_DUPLICATE:
          out.near_duplicates.append(entry)
        elif kind == QUALITY:
          out.quality = entry
        elif kind == SHORTCUT:
          out.shortcut = entry
        elif kind == SHARD_FILES:
          out.shard_files = entry
        elif kind == STALE_FINGERPRINTS:
          out.stale_fingerprints += entry
        else:
          out.errors.append(entry)
    out.shards.sort(key=lambda s: (s['split'], s['index']))
    out.duplicates.sort(key=lambda d: d['members'][0]['image_id'])
    out.near_duplicates.sort(key=lambda g: (not g['crosses_classes'], not g['crosses_splits'],
                                            g['members'][0]['image_id']))
    return out


def _write_lines(path: str, lines: Iterable[str]) -> None:
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'w') as f:
    for line in lines:
      f.write(line + '\n')


def _remove_tree(path: str) -> None:
  if files.is_uri(path):
    if tf.io.gfile.exists(path):
      tf.io.gfile.rmtree(path)
  else:
    shutil.rmtree(path, ignore_errors=True)


def _max_class_deviation(shards: Sequence[Dict[str, Any]]) -> float:
  """Largest |shard class count - class total / number of shards| (records)."""
  totals = collections.Counter()
  for s in shards:
    totals.update(s['class_counts'])
  return max((abs(s['class_counts'].get(c, 0) - n / len(shards)) for s in shards
              for c, n in totals.items()), default=0.0)


def prior_manifest(config: IngestConfig, previous: str = '') -> Tuple[str, str]:
  """-> (the split manifest whose membership this run keeps, '' for none; where it came from:
  'option' (--split-manifest), 'ml-metadata' (the previous run's, found by the driver),
  'fresh' (--fresh-splits) or 'none')."""
  if config.fresh_splits:
    return '', 'fresh'
  if config.split_manifest:
    return config.split_manifest, 'option'
  return (previous, 'ml-metadata') if previous else ('', 'none')


def deal_options_from_config(config: IngestConfig) -> DealOptions:
  """What the deal does with the images' facts, from the run's options."""
  return DealOptions(config.near_duplicates, config.quality_thresholds_parsed,
                        config.shortcut_threshold, config.shard_size_bytes)


def run_ingest(source, config: IngestConfig, examples_uri: str,
               make_pipeline: Callable[[], beam.Pipeline], previous_manifest: str = '',
               span: int = 0) -> IngestSummary:
  """Plans from the CSV (or the folder listing), runs the Beam job, reconciles, publishes,
  writes the summary. ``source`` is an ``index.Source`` or a CSV path. ``previous_manifest``:
  the split manifest the previous run of this pipeline published (found through ML Metadata),
  kept unless ``config`` names another or starts over; ``span``: this run's span.

  Raises IndexValidationError (bad rows under 'fail'), DuplicateImagesError, AssignmentError
  or ReconciliationError; then nothing is published and the staging folder is gone."""
  if not isinstance(source, index.Source):
    source = index.Source(csv_path=source)
  read = index.read_source(source, config)
  checked, config = read.checked, read.config
  listing = read.folder.listing if read.folder else None
  if not config.quarantine:
    index.fail_on_problems(source.label, checked, checked.quarantined)
  if not checked.rows:
    raise index.IndexValidationError(source.label, checked.quarantined,
                                     'no usable rows: every row is bad')
  options = files.options_from_config(config, source.base_dir)
  deal_options = deal_options_from_config(config)
  stable_groups = config.group_assignment == GROUP_ASSIGNMENT_STABLE
  chunks = unassigned_chunks(checked.rows)
  staging = files.join_uri(examples_uri, staging_lib.STAGING_DIR)
  prior_uri, prior_source = prior_manifest(config, previous_manifest)
  membership = MembershipInput(prior_uri, span, files.join_uri(staging, SPLIT_MANIFEST_FILE))
  logging.info('ImageExampleGen: %s rows from %s (%s bad in the index) -> %s chunks; split '
               'membership: %s %s', checked.rows_in, source.label, len(checked.quarantined),
               len(chunks), prior_source, prior_uri)
  try:
    _write_lines(files.join_uri(staging, staging_lib.PLAN_FILE), (c.to_json() for c in chunks))
    ignored = None
    if listing is not None:  # published with the shards (_publish), from staging
      _write_lines(files.join_uri(staging, IMAGE_INDEX_FILE), [listing.csv_text().rstrip('\n')])
      _write_lines(files.join_uri(staging, CLASS_MAPPING_FILE), [json.dumps(
          dict(sorted(config.class_mapping.items(), key=lambda kv: kv[1])), indent=1)])
      ignored = dict(listing.ignored)
    # The rows now live in the plan file; the launcher keeps only counts and CSV-level problems.
    checked = index.CheckedIndex([], checked.quarantined, checked.rows_in)
    del chunks, listing, read
    pipeline = make_pipeline()
    _ = pipeline | 'IngestImages' >> IngestImages(  # pylint: disable=no-value-for-parameter
        staging, options, config.splits, config.seed, config.duplicates, stable_groups,
        membership, deal_options)
    pipeline.run().wait_until_finish()
    result = Manifest.read(files.join_uri(staging, staging_lib.MANIFEST_FILE))
    result.membership.update(source=prior_source, prior_manifest=prior_uri)
    if result.stale_fingerprints:
      result.membership['prior_fingerprints_not_compared'] = result.stale_fingerprints
    if config.fresh_splits and previous_manifest:  # say what starting over discards
      result.membership['discarded'] = dict(
          manifest=previous_manifest,
          images=len(assignment.load_manifest(previous_manifest).images))
    return _publish(source, config, examples_uri, staging, checked, result, ignored,
                    deal_options)
  finally:
    _remove_tree(staging)


def _publish(source: index.Source, config: IngestConfig, examples_uri: str, staging: str,
             checked: index.CheckedIndex, result: Manifest,
             folder_ignored: Optional[Dict[str, int]],
             deal_options: DealOptions) -> IngestSummary:
  """Applies the policies to the job's results, reconciles, renames shards (and an image
  folder's listing and class mapping) into place."""
  if result.errors:
    raise assignment.AssignmentError('; '.join(result.errors))
  if not config.quarantine:
    index.fail_on_problems(source.label, checked, result.problems)
  quarantined = sorted(checked.quarantined + result.problems + result.dropped,
                       key=lambda p: p.line)
  if config.duplicates == DUPLICATES_FAIL and result.duplicates:
    raise duplicates_lib.fail_error(result.duplicates)
  file_counts = result.shard_files.get('files') or {s.name: s.num_shards for s in config.splits}
  expected = [(s.name, k) for s in config.splits for k in range(file_counts[s.name])]
  got = [(s['split'], s['index']) for s in result.shards]
  written = sum(s['count'] for s in result.shards)
  if sorted(got) != sorted(expected) or written + len(quarantined) != checked.rows_in:
    raise ReconciliationError(
        f'rows in ({checked.rows_in}) != examples written ({written}) + rows quarantined '
        f'({len(quarantined)}), or shards {sorted(set(expected) - set(got))} are missing; '
        'nothing was published.')
  order = {name: i for i, name in enumerate(s.name for s in config.splits)}
  shards = sorted(result.shards, key=lambda s: (order[s['split']], s['index']))
  for s in shards:
    target = files.join_uri(split_uri(examples_uri, s['split']), s['file'])
    tf.io.gfile.makedirs(os.path.dirname(target))
    tf.io.gfile.rename(files.join_uri(staging, f"{SPLIT_DIR_PREFIX}{s['split']}", s['file']),
                       target, overwrite=True)
  with tf.io.gfile.GFile(files.join_uri(examples_uri, QUARANTINE_FILE), 'w') as f:
    json.dump([p.to_dict() for p in quarantined], f, indent=1)
  if result.group_splits:
    with tf.io.gfile.GFile(files.join_uri(examples_uri, GROUP_SPLITS_FILE), 'w') as f:
      json.dump(dict(group_column=config.group_column, group_assignment=config.group_assignment,
                     group_salt_check=assignment.salt_check(config.group_hash_salt),
                     groups=dict(sorted(result.group_splits.items()))), f, indent=0)
  tf.io.gfile.rename(files.join_uri(staging, SPLIT_MANIFEST_FILE),
                     files.join_uri(examples_uri, SPLIT_MANIFEST_FILE), overwrite=True)
  if tf.io.gfile.exists(files.join_uri(staging, SPLIT_FINGERPRINTS_FILE)):
    tf.io.gfile.rename(files.join_uri(staging, SPLIT_FINGERPRINTS_FILE),
                       files.join_uri(examples_uri, SPLIT_FINGERPRINTS_FILE), overwrite=True)
  if folder_ignored is not None:  # an image folder: its index and class mapping
    for name in (IMAGE_INDEX_FILE, CLASS_MAPPING_FILE):
      tf.io.gfile.rename(files.join_uri(staging, name), files.join_uri(examples_uri, name),
                         overwrite=True)
  names = {label: name for name, label in config.class_mapping.items()}
  mask_checks, dicom_counts = {}, {}  # {split: {class name: counts}}, {category: {key: n}}
  for s in shards:
    add_mask_counts(mask_checks.setdefault(s['split'], {}), s.get('mask_counts', {}))
    add_counts(dicom_counts, s.get('dicom_counts', {}))
  mask_findings = sorted((f for s in shards for f in s.get('mask_findings', [])),
                         key=lambda f: f['line'])[:MAX_MASK_FINDINGS]
  summary = IngestSummary(
      csv_path=source.csv_path, image_dir=source.image_dir, seed=config.seed,
      splits=[dataclasses.asdict(s) for s in config.splits],
      class_names=dict(sorted(names.items())), rows_in=checked.rows_in,
      examples_written=written, rows_quarantined=len(quarantined),
      on_bad_record=config.on_bad_record, group_column=config.group_column,
      group_assignment=config.group_assignment if config.group_column else '',
      max_class_deviation=round(_max_class_deviation(shards), 3),
      duplicate_images=[dict(g, crosses_splits=len(
          {m['split'] for m in g['members'] if m['split']}) > 1) for g in result.duplicates],
      mask_check=config.mask_check, mask_size=config.mask_size,
      mask_checks={split: dict(sorted(by_class.items()))
                   for split, by_class in mask_checks.items()},
      mask_findings=mask_findings,
      dicom_window=config.dicom_window, dicom_output=config.dicom_output,
      dicom={category: dict(sorted(by_key.items())) for category, by_key in
             sorted(dicom_counts.items())},
      folder_ignored=folder_ignored or {},
      membership=result.membership,
      near_duplicates=deal_options.near_duplicates if result.quality else '',
      near_duplicate_groups=result.near_duplicates[:findings_lib.MAX_GROUPS],
      quality=dict(result.quality, near_duplicate_groups=len(result.near_duplicates))
      if result.quality else {},
      shortcut=result.shortcut,
      shard_files=result.shard_files,
      shards=[dict(split=s['split'], index=s['index'], file=s['file'], count=s['count'],
                   class_counts={int(k): v for k, v in s['class_counts'].items()})
              for s in shards])
  with tf.io.gfile.GFile(files.join_uri(examples_uri, SUMMARY_FILE), 'w') as f:
    f.write(summary.to_json())
  return summary
