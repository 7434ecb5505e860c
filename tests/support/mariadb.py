"""A private MariaDB server for the tests of a shared ML Metadata store: its own data folder,
socket and TCP port on 127.0.0.1, a database and a user with a password; stopped and removed at
the end. Debian's mariadb-server (.ci/run installs it); absent, ``start`` returns None."""
import dataclasses
import os
import shutil
import socket
import subprocess
import time
from typing import Optional

DATABASE = 'mlmd'
USER = 'cxr'
PASSWORD = 'cxr-test-password'  # a throwaway server's, on a private port


@dataclasses.dataclass
class Server:
  process: subprocess.Popen
  folder: str
  port: int

  @property
  def location(self) -> str:
    """The --metadata address (the password goes in CXR_MLMD_PASSWORD)."""
    return f'mysql://{USER}@127.0.0.1:{self.port}/{DATABASE}'

  def create_database(self, name: str) -> str:
    """A fresh database for one test -> its --metadata address."""
    self.sql(f'CREATE DATABASE {name}; GRANT ALL ON {name}.* TO {USER!r}@{"%"!r};')
    return f'mysql://{USER}@127.0.0.1:{self.port}/{name}'

  def sql(self, statements: str) -> str:
    return subprocess.run([shutil.which('mariadb'), '--no-defaults', '-S', self._socket,
                           '-u', 'root', '-N', '-e', statements], check=True,
                          capture_output=True, text=True, timeout=60).stdout

  @property
  def _socket(self) -> str:
    return os.path.join(self.folder, 'mysqld.sock')

  def stop(self) -> None:
    self.process.terminate()
    try:
      self.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
      self.process.kill()
    shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def start(folder: str) -> Optional[Server]:
  """Initialises a data folder under ``folder`` and starts the server on a free port."""
  daemon, install = shutil.which('mariadbd') or '/usr/sbin/mariadbd', shutil.which(
      'mariadb-install-db')
  if not (os.path.exists(daemon) and install and shutil.which('mariadb')):
    return None
  data = os.path.join(folder, 'data')
  user = ['--user=root'] if os.geteuid() == 0 else []
  subprocess.run([install, '--no-defaults', f'--datadir={data}', *user, '--skip-test-db',
                  '--auth-root-authentication-method=socket'], check=True,
                 capture_output=True, timeout=120)
  port = _free_port()
  process = subprocess.Popen(
      [daemon, '--no-defaults', f'--datadir={data}', f'--socket={folder}/mysqld.sock',
       f'--port={port}', '--bind-address=127.0.0.1', f'--pid-file={folder}/mysqld.pid',
       '--skip-name-resolve', *user], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  server = Server(process, folder, port)
  deadline = time.monotonic() + 60
  while True:
    try:
      server.sql(f'CREATE DATABASE {DATABASE}; CREATE USER {USER!r}@{"%"!r} IDENTIFIED BY '
                 f'{PASSWORD!r}; GRANT ALL ON {DATABASE}.* TO {USER!r}@{"%"!r};')
      return server
    except subprocess.CalledProcessError:
      if process.poll() is not None or time.monotonic() > deadline:
        server.stop()
        raise
      time.sleep(0.5)
