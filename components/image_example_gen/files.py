"""Reading one referenced file the way a worker must: confined, regular, bounded, read once.

This is what ImageExampleGen's Beam workers run for every image and mask (pure Python plus
Pillow through ``image_header``; TensorFlow only for URIs such as gs://). The bytes returned
are the bytes that were checked: each file is opened once, its confinement is checked on the
opened file itself (``/proc/self/fd``: a symlink swapped in after a path check cannot redirect
the read), only regular files are read (a FIFO or device never blocks a worker), the size limit
applies before reading, and the image check runs on those same bytes, which the caller hashes
and serializes.

A DICOM file (``DICM`` at byte 128: ``dicom.is_dicom``, a compare on the bytes already read) is
rendered from those bytes to a grayscale PNG (``dicom.render``), and the PNG is what is checked,
hashed and serialized; its facts (``dicom.DicomInfo``) come back with it. The group of a row
grouped by a DICOM attribute (``--group-column dicom:PatientID``) is read here too, as a salted
hash.
"""
import dataclasses
import functools
import os
import posixpath
import stat
from typing import Any, Optional, Sequence, Tuple

from components.errors import file_kind
from components.image_example_gen import config as config_lib
from components.image_example_gen import dicom as dicom_lib
from components.image_example_gen import image_facts
from components.image_example_gen import image_header as header_lib
from components.image_example_gen import mask_check as mask_check_lib

_PROC_FD = '/proc/self/fd'


class BadFile(ValueError):
  """A referenced file cannot be used; the message is the quarantine/error reason."""


@dataclasses.dataclass(frozen=True)
class CheckOptions:
  """What every worker checks; small configuration, pickled with the DoFns."""
  allowed_roots: Tuple[str, ...]  # resolved by the launcher's rules: never empty
  max_pixels: int
  max_file_bytes: int
  verify: str  # config_lib.VERIFY_FULL | VERIFY_HEADER
  mask_check: str = config_lib.MASK_CHECK_WARN  # MASK_CHECK_OFF skips mask_check's decode
  mask_size: Tuple[int, ...] = ()  # (width, height) masks may have instead of their image's
  dicom_window: str = dicom_lib.WINDOW_AUTO  # 'auto' | 'none' | 'C,W' (dicom.render)
  dicom_output: str = dicom_lib.OUTPUT_PNG16  # 'png16' | 'png8'
  allow_burned_in: bool = False  # write DICOM files whose BurnedInAnnotation is YES
  group_keyword: str = ''  # DICOM keyword whose (hashed) value is the row's group, or ''
  group_salt: str = ''  # salt of group hashes ('' = dicom.DEFAULT_GROUP_SALT)
  facts: bool = False  # measure each image's pixels (image_facts): fingerprint, quality, ...


def is_uri(path: str) -> bool:
  return '://' in path


def within_by_name(path: str, roots: Sequence[str]) -> bool:
  """String/URI rule the launcher applies without touching the file system: the normalised
  path lies under a normalised root (symlinks are resolved later, by the worker that opens it)."""
  if is_uri(path):
    norm = path.rstrip('/')
    return any(norm.startswith(r.rstrip('/') + '/') for r in roots if is_uri(r))
  # resolve_path's output is absolute and normalised already: normpath only what is not
  norm = path if path.startswith('/') and '/.' not in path and '//' not in path and (
      not path.endswith('/')) else os.path.normpath(os.path.abspath(path))
  return any(_under(norm, _norm_root(r)) for r in roots if not is_uri(r))


@functools.lru_cache(maxsize=256)
def _norm_root(root: str) -> str:
  return os.path.normpath(os.path.abspath(root))


def _under(path: str, root: str) -> bool:
  return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@functools.lru_cache(maxsize=256)
def _real_root(root: str) -> str:
  return os.path.realpath(root)


def _opened_path(fd: int, path: str) -> str:
  """The real path of an open file descriptor (Linux), else of the path (symlinks resolved)."""
  try:
    return os.readlink(f'{_PROC_FD}/{fd}')
  except OSError:
    return os.path.realpath(path)


def _outside(what: str, roots: Sequence[str]) -> BadFile:
  return BadFile(f'outside allowed roots: the {what} resolves (symlinks followed) outside '
                 f'{list(roots)}; add its folder with --allowed-root if it is trusted')


def read_local(path: str, what: str, options: CheckOptions) -> bytes:
  """Opens once (never blocking), checks type, confinement and size on the open file, reads."""
  try:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
  except FileNotFoundError as e:
    raise BadFile(f'missing file: {what} not found') from e
  except OSError as e:
    raise BadFile(f'unreadable {what}: {e.strerror or type(e).__name__}') from e
  try:
    info = os.fstat(fd)
    real = _opened_path(fd, path)
    if not any(_under(real, _real_root(r)) for r in options.allowed_roots if not is_uri(r)):
      raise _outside(what, options.allowed_roots)
    if not stat.S_ISREG(info.st_mode):
      raise BadFile(f'not a regular file: the {what} is a {file_kind(info.st_mode)}')
    if info.st_size > options.max_file_bytes:
      raise BadFile(f'too large {what} file: {info.st_size} bytes > {options.max_file_bytes} '
                    '(option --max-file-bytes)')
    data = _read_all(fd, info.st_size, options.max_file_bytes)
  except OSError as e:
    raise BadFile(f'unreadable {what}: {e.strerror or type(e).__name__}') from e
  finally:
    os.close(fd)
  if len(data) > options.max_file_bytes:  # grew while being read
    raise BadFile(f'too large {what} file: more than {options.max_file_bytes} bytes '
                  '(option --max-file-bytes)')
  return data


def _read_all(fd: int, size: int, limit: int) -> bytes:
  """The file's bytes, at most limit + 1: one read of the size fstat gave (plus one byte to see
  growth). Asking for ``limit`` bytes up front would allocate ``limit`` bytes for every file
  (8x slower than the read itself at 128 MiB, measured)."""
  chunks, total = [], 0
  want = min(size, limit) + 1
  while total <= limit:
    chunk = os.read(fd, want)
    if not chunk:
      break
    chunks.append(chunk)
    total += len(chunk)
    want = min(1 << 20, limit + 1 - total)
  return b''.join(chunks) if len(chunks) != 1 else chunks[0]


def read_uri(path: str, what: str, options: CheckOptions) -> bytes:
  """gs://, s3://, hdfs://...: object stores have no symlinks or special files; confinement is
  the URI prefix, the size comes from the store's metadata before the read."""
  import tensorflow as tf  # URIs only
  if not within_by_name(path, options.allowed_roots):
    raise _outside(what, options.allowed_roots)
  try:
    size = tf.io.gfile.stat(path).length
    if size > options.max_file_bytes:
      raise BadFile(f'too large {what} file: {size} bytes > {options.max_file_bytes} '
                    '(option --max-file-bytes)')
    with tf.io.gfile.GFile(path, 'rb') as f:
      return f.read()
  except tf.errors.NotFoundError as e:
    raise BadFile(f'missing file: {what} not found') from e
  except tf.errors.OpError as e:
    raise BadFile(f'unreadable {what}: {type(e).__name__}: {e.message}') from e


def read_confined(path: str, what: str, options: CheckOptions) -> bytes:
  """A local path or a URI, read under the rules above; else BadFile."""
  return (read_uri if is_uri(path) else read_local)(path, what, options)


def read_image(path: str, what: str, options: CheckOptions
               ) -> Tuple[bytes, header_lib.Decoded, Optional[dicom_lib.DicomInfo]]:
  """-> (the bytes to write, their header and -- verify 'full' -- pixels, the DICOM facts or
  None), every check done on the bytes read; else BadFile. A DICOM file's bytes to write are its
  rendered PNG (its pixels are decoded from it when they are needed)."""
  data = read_confined(path, what, options)
  if dicom_lib.is_dicom(data):
    try:
      rendered = dicom_lib.render(
          data, window=options.dicom_window, output=options.dicom_output,
          allow_burned_in=options.allow_burned_in, max_pixels=options.max_pixels,
          mask=what == 'mask', group_keyword=options.group_keyword if what == 'image' else '',
          group_salt=options.group_salt)
    except dicom_lib.BadDicom as e:
      raise BadFile(f'bad {what}: {e}') from e
    return rendered.png, header_lib.Decoded(header_lib.ImageHeader(
        'png', rendered.width, rendered.height, rendered.bit_depth, 'L')), rendered.info
  try:
    decoded = header_lib.decode_image(data, verify=options.verify, max_pixels=options.max_pixels)
  except header_lib.BadImage as e:
    if dicom_lib.has_dicom_suffix(path) and not data.startswith(
        (header_lib.PNG_SIGNATURE, header_lib.JPEG_SIGNATURE)):
      raise BadFile(f'bad {what}: not a DICOM file: no DICM marker at byte 128 (files without '
                    'the DICOM Part 10 preamble and file meta are not read)') from e
    raise BadFile(f'bad {what}: {e}') from e
  return data, decoded, None


@dataclasses.dataclass(frozen=True)
class LoadedRow:
  """A row's checked bytes, or the reasons it is bad (one per bad file, image first)."""
  image: bytes = b''
  mask: bytes = b''
  image_header: Optional[header_lib.ImageHeader] = None
  mask_header: Optional[header_lib.ImageHeader] = None
  problems: Tuple[Tuple[str, str], ...] = ()  # ((path, reason), ...)
  mask_findings: Tuple[str, ...] = ()  # mask_check codes of a written row's mask (warn)
  image_dicom: Optional[dicom_lib.DicomInfo] = None  # when the image file was DICOM
  mask_dicom: Optional[dicom_lib.DicomInfo] = None
  facts: Optional[image_facts.ImageFacts] = None  # options.facts: what the pixels showed


def _pixels(data: bytes, decoded: header_lib.Decoded) -> Any:
  """The pixels of a checked file: those its check decoded, else one decode now (header mode,
  a rendered DICOM file)."""
  if decoded.pixels is not None:
    return decoded.pixels
  return header_lib.decode_image(data, verify=config_lib.VERIFY_FULL).pixels


def load_row(image_path: str, mask_path: str, options: CheckOptions) -> LoadedRow:
  """Reads and checks a row's image and (if any) mask, each decoded at most once; every problem
  is collected. The mask's content is checked (mask_check) unless options.mask_check is off:
  under fail its findings (except an empty mask) are problems, else they are returned as
  mask_findings. With options.facts the image's pixels are measured (image_facts). With
  options.group_keyword the image must be DICOM (its group is read from its header)."""
  out, problems = {}, []
  for what, path in (('image', image_path), ('mask', mask_path)):
    if not path:
      continue
    try:
      out[what] = read_image(path, what, options)
    except BadFile as e:
      problems.append((path, str(e)))
  if 'image' in out and options.group_keyword and out['image'][2] is None:
    problems.insert(0, (image_path, (
        f'no group: the group column {dicom_lib.GROUP_PREFIX}{options.group_keyword} is read '
        'from the DICOM header, and this image is not a DICOM file')))
  if problems:
    return LoadedRow(problems=tuple(problems))
  image, image_decoded, image_dicom = out['image']
  mask, mask_decoded, mask_dicom = out.get('mask', (b'', None, None))
  image_hdr = image_decoded.header
  mask_hdr = mask_decoded.header if mask_decoded is not None else None
  findings: Tuple[str, ...] = ()
  if mask and options.mask_check != config_lib.MASK_CHECK_OFF:
    found = mask_check_lib.check_mask(mask, mask_hdr, image_hdr, options.mask_size,
                                      pixels=mask_decoded.pixels if mask_decoded else None)
    refused = [reason for code, reason in found if code in mask_check_lib.REFUSED]
    if refused and options.mask_check == config_lib.MASK_CHECK_FAIL:
      return LoadedRow(problems=((mask_path, 'bad mask: ' + '; '.join(refused)
                                  + ' (option --mask-check warn writes it and reports it)'),))
    findings = tuple(code for code, _ in found)
  facts = None
  if options.facts:
    facts = image_facts.measure(_pixels(image, image_decoded), image_hdr.width,
                                image_hdr.height, image_hdr.mode, image_hdr.bit_depth,
                                'dicom' if image_dicom is not None else image_hdr.format)
  return LoadedRow(image, mask, image_hdr, mask_hdr, mask_findings=findings,
                   image_dicom=image_dicom, mask_dicom=mask_dicom, facts=facts)


def options_from_config(config: config_lib.IngestConfig, base_dir: str) -> CheckOptions:
  """What every worker checks, from the run's config; ``base_dir`` (the CSV's or the image
  folder's) is the default allowed root."""
  return CheckOptions(
      resolve_roots(config.allowed_roots, base_dir), config.max_pixels, config.max_file_bytes,
      config.verify, config.mask_check, config.declared_mask_size,
      dicom_window=config.dicom_window, dicom_output=config.dicom_output,
      allow_burned_in=config.allow_burned_in, group_keyword=config.dicom_group_keyword,
      group_salt=config.group_hash_salt, facts=config.measures_images)


def written_group(group: str, options: CheckOptions) -> str:
  """A row's group as records and split manifests hold it: a group read from a DICOM header is
  hashed already (by the worker that read it); a CSV column's value is hashed here with the
  salt; '' without a group."""
  if not group or options.group_keyword:
    return group
  return dicom_lib.hash_group(group, options.group_salt)


def resolve_roots(allowed_roots: Sequence[str], csv_dir: str) -> Tuple[str, ...]:
  """The roots workers confine reads to: the configured ones, else the CSV's folder; local
  roots absolute (workers may run elsewhere, but with the same mounts), URIs as given."""
  roots = list(allowed_roots) or [csv_dir]
  return tuple(r if is_uri(r) else os.path.abspath(r) for r in roots)


def join_uri(base: str, *parts: str) -> str:
  return posixpath.join(base, *parts) if is_uri(base) else os.path.join(base, *parts)
