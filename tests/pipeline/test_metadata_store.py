"""--metadata addresses (pipeline/metadata_store.py): a SQLite path or mysql://USER@HOST:PORT/DB,
never with a password in it (pure)."""
import pytest

from components.errors import ConfigError
from pipeline import metadata_store


def test_a_mysql_address_names_user_host_port_and_database():
  got = metadata_store.parse_mysql('mysql://cxr@db.internal:3307/mlmd')
  assert (got.user, got.host, got.port, got.database, got.socket) == (
      'cxr', 'db.internal', 3307, 'mlmd', '')
  assert metadata_store.parse_mysql('mysql://cxr@db/mlmd').port == 3306
  local = metadata_store.parse_mysql('mysql://cxr@localhost/mlmd?socket=/run/mysqld/m.sock')
  assert local.socket == '/run/mysqld/m.sock'
  assert str(got) == 'mysql://cxr@db.internal:3307/mlmd'
  assert metadata_store.is_server('mysql://cxr@db/mlmd')
  assert not metadata_store.is_server('out/metadata.sqlite')
  assert metadata_store.describe('out/metadata.sqlite') == 'out/metadata.sqlite'


@pytest.mark.parametrize('location, problem', [
    ('mysql://cxr:hunter2@db/mlmd', 'CXR_MLMD_PASSWORD'),
    ('mysql://db/mlmd', 'no user'),
    ('mysql://cxr@db', 'no database'),
    ('mysql://cxr@db/a/b', 'no database'),
    ('mysql://cxr@db:port/mlmd', 'port is not a number'),
    ('mysql://cxr@db/mlmd?ssl=1', 'unknown parameters'),
])
def test_a_bad_address_is_refused_naming_the_problem_and_never_echoing_a_password(location,
                                                                                 problem):
  with pytest.raises(ConfigError, match='--metadata') as e:
    metadata_store.parse_mysql(location)
  assert problem in str(e.value) and 'hunter2' not in str(e.value)


def test_the_password_comes_from_the_environment_or_a_file(tmp_path):
  secret = tmp_path / 'pw'
  secret.write_text('s3cret\n')
  assert metadata_store.password({'CXR_MLMD_PASSWORD': 'a'}) == 'a'
  assert metadata_store.password({'CXR_MLMD_PASSWORD_FILE': str(secret)}) == 's3cret'
  assert metadata_store.password({}) == ''
  with pytest.raises(ConfigError, match='CXR_MLMD_PASSWORD_FILE'):
    metadata_store.password({'CXR_MLMD_PASSWORD_FILE': str(tmp_path / 'missing')})


def test_connection_configs(monkeypatch):
  monkeypatch.setenv('CXR_MLMD_PASSWORD', 'pw')
  mysql = metadata_store.connection_config('mysql://cxr@127.0.0.1:3307/mlmd')
  assert (mysql.mysql.host, mysql.mysql.port, mysql.mysql.user, mysql.mysql.password) == (
      '127.0.0.1', 3307, 'cxr', 'pw')
  sqlite = metadata_store.connection_config('/x/metadata.sqlite', read_only=True)
  assert sqlite.sqlite.filename_uri == '/x/metadata.sqlite'
