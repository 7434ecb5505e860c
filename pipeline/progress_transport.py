"""Where the progress display's ``Renderer`` runs: ``ThreadTransport`` (in this process, ticked
by a daemon thread) or ``ProcessTransport`` (a forked process fed pickled messages through a
pipe, so the spinner keeps turning while this process holds the GIL). Both take the display's
messages with ``send`` and stop with ``close``.
"""
import os
import pickle
import select
import signal
import struct
import threading

from pipeline.progress_render import Renderer


class ThreadTransport:
  """The renderer in this process: messages handled at once, ticks from a daemon thread. For
  streams without a file descriptor (tests' StringIO) or systems without fork."""

  def __init__(self, renderer: Renderer, tick: float):
    self._renderer = renderer
    self._tick = tick
    self._lock = threading.Lock()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, name='cxr-progress', daemon=True)
    self._thread.start()

  def _run(self) -> None:
    while not self._stop.wait(self._tick):
      with self._lock:
        self._renderer.tick()

  def send(self, message: tuple) -> None:
    with self._lock:
      self._renderer.handle(message)

  def close(self) -> None:
    self._stop.set()
    self._thread.join(timeout=5)
    self.send(('close',))


class ProcessTransport:
  """The renderer in a forked process fed through a pipe, so it draws on time whatever this
  process does: importing TensorFlow can hold the GIL for tens of seconds while its shared
  libraries load (40 s from a cold disk cache, measured), and Beam's in-process runner holds it
  for seconds at a time; a thread's spinner would freeze. The child only draws (raw writes to
  the stream's file descriptor) and exits when the pipe closes."""

  def __init__(self, renderer: Renderer, fd: int, tick: float):
    read_end, self._pipe = os.pipe()
    self._pid = os.fork()
    if self._pid == 0:  # the child
      code = 0
      try:
        os.close(self._pipe)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: this process's parent decides
        renderer._write = lambda text: _write_fd(fd, text)  # pylint: disable=protected-access
        self._serve(renderer, read_end, tick)
      except BaseException:  # pylint: disable=broad-except
        code = 1
      finally:
        os._exit(code)  # pylint: disable=protected-access
    os.close(read_end)

  @staticmethod
  def _serve(renderer: Renderer, read_end: int, tick: float) -> None:
    buffer = b''
    while True:
      if select.select([read_end], [], [], tick)[0]:
        data = os.read(read_end, 1 << 16)
        if not data:
          renderer.handle(('close',))
          return
        buffer += data
        while len(buffer) >= 4:
          size = struct.unpack('>I', buffer[:4])[0]
          if len(buffer) < 4 + size:
            break
          message = pickle.loads(buffer[4:4 + size])
          buffer = buffer[4 + size:]
          renderer.handle(message)
          if message[0] == 'close':
            return
      renderer.tick()

  def send(self, message: tuple) -> None:
    data = pickle.dumps(message)
    try:
      os.write(self._pipe, struct.pack('>I', len(data)) + data)
    except OSError:  # the display process is gone: progress is never worth an error
      pass

  def close(self) -> None:
    self.send(('close',))
    os.close(self._pipe)
    os.waitpid(self._pid, 0)


def _write_fd(fd: int, text: str) -> None:
  data = text.encode('utf-8', 'replace')
  while data:
    try:
      data = data[os.write(fd, data):]
    except InterruptedError:
      continue
    except OSError:  # the reader left
      return
