"""Where the ML Metadata store is: a SQLite file (the default, ``<pipeline_root>/metadata.sqlite``)
or a shared MySQL/MariaDB server, as Kubeflow runs it (pure: parsing only; ML Metadata is imported
when a connection config is built).

``--metadata`` takes a file path, or ``mysql://USER@HOST[:PORT]/DATABASE`` (a local server's
socket: ``mysql://USER@localhost/DATABASE?socket=/run/mysqld/mysqld.sock``). The password is
never part of it -- a command line is visible to every user of the machine (``ps``) and kept in
shell histories: it comes from the environment variable ``CXR_MLMD_PASSWORD``, or from the file
named by ``CXR_MLMD_PASSWORD_FILE``.
"""
import dataclasses
import os
from typing import Mapping, Optional
import urllib.parse

from components.errors import ConfigError

MYSQL_SCHEME = 'mysql'
DEFAULT_MYSQL_PORT = 3306
PASSWORD_ENV = 'CXR_MLMD_PASSWORD'
PASSWORD_FILE_ENV = 'CXR_MLMD_PASSWORD_FILE'


@dataclasses.dataclass(frozen=True)
class MySqlAddress:
  """A MySQL/MariaDB database; the password is read from the environment when connecting."""
  user: str
  host: str
  port: int
  database: str
  socket: str = ''

  def __str__(self) -> str:
    where = f'{self.host}:{self.port}' if not self.socket else f'{self.host}'
    query = f'?socket={self.socket}' if self.socket else ''
    return f'{MYSQL_SCHEME}://{self.user}@{where}/{self.database}{query}'


def is_server(location: str) -> bool:
  """Whether ``location`` names a database server rather than a SQLite file."""
  return location.startswith(f'{MYSQL_SCHEME}://')


def parse_mysql(location: str) -> MySqlAddress:
  """'mysql://USER@HOST[:PORT]/DB[?socket=PATH]' -> MySqlAddress; ConfigError naming
  --metadata (and what is wrong) otherwise."""
  url = urllib.parse.urlsplit(location)
  problem = ''
  try:
    port = url.port or DEFAULT_MYSQL_PORT
  except ValueError:
    port, problem = 0, 'the port is not a number'
  query = urllib.parse.parse_qs(url.query)
  if url.password is not None:
    problem = (f'a password in the address is visible to every user of this machine; give it in '
               f'the environment variable {PASSWORD_ENV} (or a file named by {PASSWORD_FILE_ENV})')
  elif not url.username:
    problem = 'it names no user (mysql://USER@HOST:PORT/DATABASE)'
  elif not url.hostname:
    problem = 'it names no host'
  elif not url.path.strip('/') or '/' in url.path.strip('/'):
    problem = 'it names no database (one path segment: /DATABASE)'
  elif set(query) - {'socket'}:
    problem = f'unknown parameters {sorted(set(query) - {"socket"})} (only socket=PATH)'
  if problem:
    shown = location.replace(f':{url.password}@', ':***@') if url.password else location
    raise ConfigError(f'--metadata {shown!r}: {problem} (option --metadata).')
  return MySqlAddress(urllib.parse.unquote(url.username), url.hostname or '', port,
                      url.path.strip('/'), (query.get('socket') or [''])[0])


def password(environ: Optional[Mapping[str, str]] = None) -> str:
  """The server password: $CXR_MLMD_PASSWORD, else the first line of $CXR_MLMD_PASSWORD_FILE,
  else '' (a server that needs none)."""
  environ = os.environ if environ is None else environ
  if environ.get(PASSWORD_ENV):
    return environ[PASSWORD_ENV]
  path = environ.get(PASSWORD_FILE_ENV, '')
  if not path:
    return ''
  try:
    with open(path, encoding='utf-8') as f:
      return f.readline().rstrip('\r\n')
  except OSError as e:
    raise ConfigError(f'cannot read the ML Metadata password file {path} ({PASSWORD_FILE_ENV}): '
                      f'{e.strerror}.') from e


def describe(location: str) -> str:
  """The store for messages: the SQLite path, or the server address (never a password)."""
  return str(parse_mysql(location)) if is_server(location) else location


def connection_config(location: str, read_only: bool = False):
  """ML Metadata's ConnectionConfig for a SQLite path or a mysql:// address."""
  from ml_metadata.proto import metadata_store_pb2
  config = metadata_store_pb2.ConnectionConfig()
  if is_server(location):
    address = parse_mysql(location)
    config.mysql.host = address.host
    config.mysql.port = address.port
    config.mysql.database = address.database
    config.mysql.user = address.user
    config.mysql.password = password()
    if address.socket:
      config.mysql.socket = address.socket
    return config
  config.sqlite.filename_uri = location
  config.sqlite.connection_mode = (
      metadata_store_pb2.SqliteMetadataSourceConfig.READONLY if read_only
      else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
  return config
