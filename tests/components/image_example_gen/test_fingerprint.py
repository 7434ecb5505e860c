"""The driver's fingerprint of referenced files obeys the workers' rules (real files)."""
import os

from components.image_example_gen import fingerprint
from components.image_example_gen.config import IngestConfig

MAPPING = {'a': 0}


def test_content_fingerprint_sees_bytes_and_never_reads_special_or_outside_files(tmp_path):
  data = tmp_path / 'data'
  data.mkdir()
  (data / 'x.png').write_bytes(b'one')
  os.mkfifo(data / 'fifo.png')  # a blocking read would hang the driver
  outside = tmp_path / 'secret.png'
  outside.write_bytes(b'secret')
  csv = data / 'index.csv'
  csv.write_text(f'image_path,mask_path,class\nx.png,,a\nfifo.png,,a\n{outside},,a\n')
  config = IngestConfig(MAPPING)
  first = fingerprint.referenced_files(str(csv), config, content=True)
  assert first.startswith('referenced files (path/size/mtime/content): 3, sha256:')
  stat = os.stat(data / 'x.png')
  (data / 'x.png').write_bytes(b'two')  # same size, same mtime: only the content differs
  os.utime(data / 'x.png', ns=(stat.st_atime_ns, stat.st_mtime_ns))
  second = fingerprint.referenced_files(str(csv), config, content=True)
  assert second != first
  outside.write_bytes(b'changed, and longer')  # outside the allowed roots: never stat'ed/read
  assert fingerprint.referenced_files(str(csv), config, content=True) == second
