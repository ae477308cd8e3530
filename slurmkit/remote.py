"""SSH to the cluster's hosts with Fabric: the only module that imports fabric/paramiko connections.

Heads are reached directly; compute nodes through ``ssh.proxy_jump`` when set (one shared gateway connection,
many channels). With ``ssh.config_file`` the OpenSSH config decides HostName, User, Port, IdentityFile and
ProxyJump, as ``ssh`` would. Host keys are checked against ``ssh.known_hosts`` (or ``~/.ssh/known_hosts``);
an unknown host is refused, never silently trusted.

Fabric opens and authenticates each connection; a command runs on an exec channel of its transport
(:meth:`Conn.run`), files are written by a command that unpacks them from its stdin (:func:`pack`), and only
reading a file back (for a diff) opens SFTP (every block requested at once).

Sockets: paramiko sets no TCP_NODELAY; each direct connection here gets its socket from :func:`_nodelay_socket`
(TCP_NODELAY, and quick ACKs against sshd's own Nagle): measured on a local cluster, a connection to the head
66-112 -> 22 ms, its first command 55 -> 16 ms, a compute's connection through the jump host 215 -> 65 ms, a 2 MB
SFTP read 440-510 -> 25-45 ms (with prefetch). No SFTP slowdown with NODELAY was found (reads and writes, 3 KB
and 2 MB, on the head and through the jump host: all as fast or faster).

Work fans out over a thread pool; each host's outcome is data (:class:`HostResult`), and a failure on one host
never stops the others.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, TypeVar

from slurmkit.cluster import Cluster, Host, resolve_relative
from slurmkit.errors import CommandError, SlurmkitError

T = TypeVar("T")


class _TimedOut(Exception):
    """A command ran past its timeout (Conn.run turns it into a CommandError)."""


class UnreachableError(SlurmkitError):
    """A host could not be connected to (DNS, refused, timeout, auth, host key)."""

    def __init__(self, host: str, reason: str):
        self.host = host
        self.reason = reason
        super().__init__(f"{host}: unreachable: {reason}")


@dataclass
class Result:
    """What one command on one host gave: the command line as sent, its exit code (-1 when the channel closed
    without one), and its whole stdout and stderr as text (undecodable bytes replaced)."""

    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class HostResult(Generic[T]):
    """One host's outcome in a fan-out (:meth:`ClusterSSH.run_all`): the value the work returned, or the error it
    raised (an :class:`UnreachableError`, a ``CommandError``, ...), never both; ``seconds`` from the start of its
    connection to the end of its work."""

    host: str
    value: T | None = None
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class GroupResult(Generic[T]):
    """Every host's :class:`HostResult` of one fan-out, by host name in the cluster file's order: a failure on some
    hosts is data beside the others' values (as Fabric's GroupResult), split by :attr:`failed` and
    :attr:`succeeded`."""

    results: dict[str, HostResult[T]] = field(default_factory=dict)

    @property
    def failed(self) -> dict[str, HostResult[T]]:
        return {h: r for h, r in self.results.items() if not r.ok}

    @property
    def succeeded(self) -> dict[str, HostResult[T]]:
        return {h: r for h, r in self.results.items() if r.ok}


@dataclass(frozen=True)
class Upload:
    """A file to put on a host: written beside ``path`` (``tmp``), then given its owner and renamed over it."""

    path: str
    data: bytes
    mode: int = 0o644
    owner: str = "root"
    group: str | None = None

    @property
    def tmp(self) -> str:
        return f"{self.path}.slurmkit-tmp"

    def move(self) -> str:
        """The shell that puts the unpacked temp file in place. It was unpacked as root's with its mode set, so a
        root file needs only its rename (one process: each counts when many hosts share one machine)."""
        move = f"mv -f {shlex.quote(self.tmp)} {shlex.quote(self.path)}"
        group = self.group or self.owner
        if (self.owner, group) == ("root", "root"):
            return move
        return f"chown {shlex.quote(f'{self.owner}:{group}')} {shlex.quote(self.tmp)} && {move}"


# Files travel as one tar stream on the stdin of the command that puts them in place: one process on the host
# and no extra round trip, where SFTP took a subsystem session (sshd forks, the login shell starts sftp-server)
# and four requests a file. GNU tar (Essential in Debian and Ubuntu) as root creates each file with its mode
# from the start (a secret is never readable by others, even for a moment), replaces a temp file an earlier
# run left, makes missing directories, and takes the host's clock for mtime (-m: no skew warnings). tar reads
# the stream to its end (pack pads it to whole records); the script's later commands read /dev/null all the
# same, so none could ever see a leftover of it.
UNPACK = "tar -x -f - -C / -p -m --no-same-owner && exec </dev/null"


def pack(uploads: Iterable[Upload]) -> bytes:
    """The tar stream that :data:`UNPACK` unpacks: each upload's temp file, root's, with its mode."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for u in uploads:
            if not u.path.startswith("/"):
                raise ValueError(f"upload path must be absolute: {u.path!r}")
            info = tarfile.TarInfo(u.tmp.lstrip("/"))
            info.size, info.mode, info.uname, info.gname = len(u.data), u.mode, "root", "root"
            tar.addfile(info, io.BytesIO(u.data))
    return buf.getvalue()


class Conn:
    """One host's connection: run commands, read and write files. Wraps fabric.Connection."""

    def __init__(self, host: Host, fabric_conn: Any):
        self.host = host
        self._c = fabric_conn
        self._sftp = None

    @property
    def name(self) -> str:
        return self.host.name

    def run(self, command: str, check: bool = True, input: str | bytes | None = None,
            timeout: float | None = 300) -> Result:
        """Run a shell command on the host (by the login user's shell, as ``ssh host command`` does). ``input`` is
        its stdin, closed after it (none: stdin is closed at once). With check, a non-zero exit raises
        CommandError (host, command, exit code, stderr tail); a command still running after ``timeout`` seconds
        is abandoned (its channel closed) and raises CommandError."""
        try:
            code, out, err = self._exec(command, input.encode() if isinstance(input, str) else input, timeout)
        except _TimedOut:
            raise CommandError(command, None, "", f"timed out after {timeout:g} s", host=self.name) from None
        except Exception as exc:  # paramiko's SSHException, socket errors
            if _is_connection_error(exc):
                raise UnreachableError(self.name, _describe(exc)) from None
            raise CommandError(command, None, "", f"{type(exc).__name__}: {exc}", host=self.name) from None
        res = Result(command, code, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and not res.ok:
            raise CommandError(command, res.exit_code, res.stdout, res.stderr, host=self.name)
        return res

    def _exec(self, command: str, stdin: bytes | None, timeout: float | None) -> tuple[int, bytes, bytes]:
        """One exec channel on the connection's transport (Fabric opened and authenticated it). Used instead of
        fabric's ``Connection.run``, whose runner threads and polling cost ~1 ms of client CPU per command: at 64
        hosts the client is one of the busiest processes. stdout and stderr are drained together (one event set
        by either buffer), so a command that fills one while the other is read cannot stall."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._c.is_connected:
            self._c.open()
        ch = self._c.transport.open_session(timeout=timeout)
        try:
            ready = threading.Event()
            ch.in_buffer.set_event(ready)
            ch.in_stderr_buffer.set_event(ready)
            ch.exec_command(command)
            if stdin:
                ch.settimeout(timeout)
                try:
                    ch.sendall(stdin)
                except socket.timeout:
                    raise _TimedOut() from None
            ch.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                while ch.recv_ready():
                    out += ch.recv(1 << 16)
                while ch.recv_stderr_ready():
                    err += ch.recv_stderr(1 << 16)
                # Reading a buffer empty clears the shared event: look again before waiting on it.
                if ch.recv_ready():
                    continue
                if ch.closed or ch.eof_received:  # all output arrives before EOF; what is left is read below
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise _TimedOut()
                ready.wait(left)
            # A channel closed early (the connection dropped) has no exit status: paramiko reports -1.
            if not ch.status_event.wait(None if deadline is None else max(0.0, deadline - time.monotonic())):
                raise _TimedOut()
            out += ch.in_buffer.empty()
            err += ch.in_stderr_buffer.empty()
            code = ch.recv_exit_status()
            if code == -1 and not self._c.transport.is_active():
                raise EOFError("the connection closed while the command ran")
            return code, bytes(out), bytes(err)
        finally:
            ch.close()

    def sftp(self):
        if self._sftp is None:
            self._sftp = self._c.sftp()
        return self._sftp

    def read(self, path: str) -> bytes | None:
        """A remote file's bytes, or None when it does not exist. Its blocks are requested all at once (paramiko's
        prefetch), not one 32 KB request per round trip: a 2 MB file took 70-110 ms that way, 25-45 ms now."""
        try:
            with self.sftp().open(path, "rb") as f:
                f.prefetch()
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if getattr(exc, "errno", None) == 2:
                return None
            raise CommandError(f"read {path}", None, "", str(exc), host=self.name) from None

    def write(self, path: str, data: bytes, mode: int = 0o644, owner: str = "root", group: str | None = None) -> None:
        """Write a file atomically, in one command: unpacked beside it with its mode, given its owner, renamed over
        the target (see :func:`pack`)."""
        upload = Upload(path, data, mode, owner, group)
        self.run(f"{UNPACK}\n{upload.move()}", input=pack([upload]))

    def close(self) -> None:
        try:
            if self._sftp is not None:
                self._sftp.close()
            self._c.close()
        except Exception:
            pass


def _paramiko():
    """paramiko, imported without Invoke when nothing imported Invoke yet. paramiko.config imports Invoke at import
    time only to run an SSH config's ``Match exec``; Invoke imports unittest.mock, which imports asyncio: 115-170 ms
    here, the biggest import of a `slurmkit jobs` (Fabric imports Invoke itself, so this spares only the processes
    that never build a fabric.Connection: :class:`HeadRunner`'s). paramiko.config gets a stand-in that imports
    Invoke on first use, so ``Match exec`` still works."""
    import sys

    if "paramiko" in sys.modules or "invoke" in sys.modules:
        import paramiko

        return paramiko
    sys.modules["invoke"] = None  # type: ignore[assignment]  # "import invoke" raises ImportError meanwhile
    try:
        import paramiko
        import paramiko.config
    finally:
        del sys.modules["invoke"]
    if paramiko.config.invoke is None:
        paramiko.config.invoke = _InvokeOnUse()
    return paramiko


class _InvokeOnUse:
    """Stands for the invoke module in paramiko.config until it is used (see :func:`_paramiko`)."""

    def __getattr__(self, name: str) -> Any:
        import invoke
        import paramiko.config

        paramiko.config.invoke = invoke
        return getattr(invoke, name)


class _DirectConnection:
    """What :class:`Conn` uses of a ``fabric.Connection`` (host, port, client, transport, is_connected, open, sftp,
    close), on paramiko's SSHClient alone, for a host reached directly with the cluster file's user, key and port
    (no SSH config file, no jump host). :class:`HeadRunner` runs one or a few Slurm commands per process: without
    Fabric, and so without Invoke (:func:`_paramiko`), its process imports ~100 modules fewer. It opens as a
    fabric.Connection would with these settings (``connect_kwargs`` as given, ``connect_timeout`` as paramiko's
    timeout), on a socket with TCP_NODELAY."""

    def __init__(self, host: str, user: str | None, port: int | None, connect_kwargs: dict[str, Any],
                 connect_timeout: float | None):
        self.host, self.user, self.port = host, user, port or 22
        self.connect_kwargs = connect_kwargs
        self.connect_timeout = connect_timeout
        self.client = _paramiko().SSHClient()
        self.transport: Any = None
        self._sftp: Any = None

    @property
    def is_connected(self) -> bool:
        return self.transport is not None and self.transport.active

    def open(self) -> None:
        if self.is_connected:
            return
        sock = _nodelay_socket(self.host, self.port, self.connect_timeout)
        try:
            self.client.connect(hostname=self.host, port=self.port, username=self.user, sock=sock,
                                timeout=self.connect_timeout, **self.connect_kwargs)
        except BaseException:
            sock.close()
            raise
        self.transport = self.client.get_transport()

    def sftp(self) -> Any:
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        self.client.close()
        self.transport = None


_CONNECTION_CLASS: Any = None


def _connection_class():
    """fabric.Connection whose direct connections open a socket with TCP_NODELAY.

    An SSH exchange is a few small packets each way (a channel request, its data, EOF, the window adjust): with
    Nagle's algorithm on, a small packet sent while an earlier one is unacknowledged waits for that ACK, which the
    server delays (up to 40 ms on Linux): OpenSSH's client sets TCP_NODELAY on interactive sessions for that reason.
    paramiko never does. So the socket is made here, NODELAY set, and given to paramiko as ``sock``. A connection
    through the jump host runs over a channel of the gateway's transport (no socket of its own): its packets travel
    on the gateway's socket, which has NODELAY; the jump host's sshd forwards them on its own socket to the node."""
    global _CONNECTION_CLASS
    if _CONNECTION_CLASS is None:
        from fabric import Connection

        class NoDelayConnection(Connection):
            def open(self):
                if self.is_connected or self.gateway or "sock" in self.connect_kwargs:
                    return super().open()
                sock = _nodelay_socket(self.host, int(self.port or 22), self.connect_timeout)
                self.connect_kwargs = {**self.connect_kwargs, "sock": sock}
                try:
                    return super().open()
                except BaseException:
                    sock.close()
                    raise
                finally:  # a reconnection makes a new socket
                    self.connect_kwargs = {k: v for k, v in self.connect_kwargs.items() if k != "sock"}

        _CONNECTION_CLASS = NoDelayConnection
    return _CONNECTION_CLASS


class _LowLatencySocket(socket.socket):
    """A TCP socket that acknowledges at once what it receives (TCP_QUICKACK, re-armed after each read: Linux
    leaves quick-ack mode on its own). sshd does not set TCP_NODELAY on a session without a terminal, so a small
    packet it sends right after another (the channel-open confirmation after the host-keys notice that follows
    authentication) waits for the client's ACK of the first, which Linux delays up to 40 ms when the client has
    nothing to send: every connection's first command took 42 ms more than the next one on this machine."""

    __slots__ = ()

    def recv(self, bufsize: int, *flags: int) -> bytes:
        data = super().recv(bufsize, *flags)
        if _QUICKACK is not None:
            try:
                self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        return data


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def _nodelay_socket(host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to host:port with TCP_NODELAY and quick ACKs (the first address that answers, as ``ssh``
    tries them)."""
    # An ASCII name is given as bytes: for a str, getaddrinfo imports the idna codec (and stringprep), ~25 ms of a
    # command's start-up.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    raw = socket.create_connection((name, port), timeout=timeout)  # type: ignore[arg-type]
    sock = _LowLatencySocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
    sock.settimeout(timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _is_connection_error(exc: BaseException) -> bool:
    paramiko = _paramiko()

    return isinstance(exc, (socket.error, socket.timeout, paramiko.SSHException, EOFError, TimeoutError))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if type(exc).__name__ == "ChannelException":
        return "the jump host could not open a connection to it (sshd down, connection refused or no route)"
    if "not found in known_hosts" in text or type(exc).__name__ == "SSHException" and "Server" in text and "not found" in text:
        return f"{text}: its host key is unknown; add it to the cluster's known_hosts (ssh.known_hosts) first"
    return text


class ClusterSSH:
    """Connections to a cluster's hosts, built from the cluster file."""

    def __init__(self, cluster: Cluster, base_dir: Path, max_workers: int = 32, nodelay: bool = True,
                 fabric: bool = True):
        self.cluster = cluster
        self.base_dir = base_dir
        self.max_workers = max_workers
        self.nodelay = nodelay  # TCP_NODELAY on the sockets this opens (see _connection_class); off only to measure
        # fabric=False: a host reached directly (no SSH config file, no jump host) is connected by paramiko alone
        # (_DirectConnection); HeadRunner's processes then never import Fabric or Invoke
        self.fabric = fabric
        self._gateway = None
        self._host_keys = None
        self._fabric_config = threading.local()
        self._lock = threading.Lock()
        self._keys_lock = threading.Lock()

    # ----- connection building -----
    def _connect_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"banner_timeout": 30, "auth_timeout": 30}
        if self.cluster.ssh.identity_file:
            kw["key_filename"] = [str(resolve_relative(self.cluster.ssh.identity_file, self.base_dir))]
            kw["look_for_keys"] = False
            kw["allow_agent"] = False
        return kw

    def _config(self):
        """One Fabric Config per thread (building one costs ~1 ms). Not one for all: a Connection writes to its
        config as it is built (``self.inline_ssh_env = ...`` is proxied to ``config._modify``, which empties and
        re-merges it), so a Connection built in another thread at that moment read an empty config
        ("No attribute or config key found for 'forward_agent'", seen once in 40 hosts x 3 rounds)."""
        cfg = getattr(self._fabric_config, "config", None)
        if cfg is None:
            cfg = self._fabric_config.config = self._new_config()
        return cfg

    def _new_config(self):
        from fabric import Config

        overrides = {"load_ssh_configs": bool(self.cluster.ssh.config_file)}
        if self.cluster.ssh.config_file:
            return Config(runtime_ssh_path=str(resolve_relative(self.cluster.ssh.config_file, self.base_dir)), overrides=overrides)
        return Config(overrides=overrides)

    def _new_connection(self, host: str, user: str | None, port: int | None, gateway: Any = None):
        Connection = _connection_class() if self.nodelay else __import__("fabric").Connection

        c = Connection(host=host, user=user, port=port, config=self._config(), connect_kwargs=self._connect_kwargs(),
                       gateway=gateway, connect_timeout=self.cluster.ssh.connect_timeout)
        self._host_key_policy(c)
        return c

    def _known_hosts(self):
        """The cluster's known_hosts, parsed once (paramiko.HostKeys; empty when the file does not exist)."""
        paramiko = _paramiko()

        with self._keys_lock:  # not self._lock: gateway() holds that one while it connects
            if self._host_keys is None:
                kh = self.cluster.ssh.known_hosts
                path = resolve_relative(kh, self.base_dir) if kh else Path("~/.ssh/known_hosts").expanduser()
                self._host_keys = paramiko.HostKeys(str(path)) if path.exists() else paramiko.HostKeys()
            return self._host_keys

    def _host_key_policy(self, c: Any) -> None:
        """Unknown host keys are rejected; the known ones for this host are given to its client. Each client used
        to parse the whole file: O(hosts) per connection, 2.4 ms each on 65 hosts, and quadratic over a cluster."""
        paramiko = _paramiko()

        c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        known = self._known_hosts()
        mine = c.client.get_host_keys()
        port = c.port or 22
        for name in {c.host, f"[{c.host}]:{port}"}:  # how paramiko names the server when it checks its key
            for keytype, key in (known.lookup(name) or {}).items():
                mine.add(name, keytype, key)

    def _jump_target(self) -> tuple[str, str | None, int | None] | None:
        pj = self.cluster.ssh.proxy_jump
        if not pj:
            return None
        user, _, hostport = pj.rpartition("@")
        host, _, port = hostport.partition(":")
        return host, user or self.cluster.ssh.user, int(port) if port else None

    def gateway(self):
        """The one shared connection to the jump host (opened on first use)."""
        with self._lock:
            if self._gateway is None:
                host, user, port = self._jump_target()
                # The jump host may be named by a head's name: reach it at that head's address.
                addr = next((h.address for h in self.cluster.hosts() if h.name == host), host)
                gw = self._new_connection(addr, user, port or self.cluster.ssh.port)
                try:
                    gw.open()
                except Exception as exc:
                    if _is_connection_error(exc):
                        raise UnreachableError(f"jump host {host}", _describe(exc)) from None
                    raise
                self._gateway = gw
            return self._gateway

    def connect(self, host: Host) -> Conn:
        jump = self._jump_target()
        via_jump = jump is not None and host.role == "compute" and not self.cluster.ssh.config_file
        gw = self.gateway() if via_jump else None
        target = host.name if self.cluster.ssh.config_file else host.address
        user = None if self.cluster.ssh.config_file else self.cluster.ssh.user
        port = None if self.cluster.ssh.config_file else self.cluster.ssh.port
        if not self.fabric and gw is None and not self.cluster.ssh.config_file and self.nodelay:
            c: Any = _DirectConnection(target, user, port, self._connect_kwargs(), self.cluster.ssh.connect_timeout)
            self._host_key_policy(c)
        else:
            c = self._new_connection(target, user, port, gateway=gw)
        try:
            c.open()
        except Exception as exc:
            c.close()
            if _is_connection_error(exc):
                raise UnreachableError(host.name, _describe(exc)) from None
            raise
        return Conn(host, c)

    def close(self) -> None:
        if self._gateway is not None:
            try:
                self._gateway.close()
            except Exception:
                pass
            self._gateway = None

    # ----- fan-out -----
    def run_all(self, hosts: Iterable[Host], fn: Callable[[Conn], T],
                on_done: Callable[[HostResult[T]], None] | None = None) -> GroupResult[T]:
        """Connect to every host in parallel and call ``fn(conn)``; each host's value or error is kept.

        The connections are closed once every host is done, not as each finishes: closing a connection tunnelled
        through the jump host while others are still opening through it kills the shared gateway connection now
        and then (paramiko; seen from 32 parallel hosts on: EOFError and "Authentication timeout" for most of the
        others, the jump host's sshd logging protocol errors). ``tests/live/test_fanout.py`` keeps it honest."""
        hosts = list(hosts)
        group: GroupResult[T] = GroupResult()
        if not hosts:
            return group
        opened: list[Conn] = []

        def one(h: Host) -> HostResult[T]:
            t0 = time.monotonic()
            try:
                conn = self.connect(h)
                with self._lock:
                    opened.append(conn)
                return HostResult(h.name, value=fn(conn), seconds=time.monotonic() - t0)
            except Exception as exc:  # kept as data: the other hosts go on
                return HostResult(h.name, error=exc, seconds=time.monotonic() - t0)

        if self._jump_target() and any(h.role == "compute" for h in hosts) and not self.cluster.ssh.config_file:
            try:
                self.gateway()
            except UnreachableError as exc:
                for h in hosts:
                    if h.role == "compute":
                        group.results[h.name] = HostResult(h.name, error=exc)
                hosts = [h for h in hosts if h.role != "compute"]
        from concurrent.futures import ThreadPoolExecutor, as_completed

        try:
            with ThreadPoolExecutor(max_workers=min(self.max_workers, max(1, len(hosts)))) as pool:
                futures = {pool.submit(one, h): h for h in hosts}
                for fut in as_completed(futures):
                    res = fut.result()
                    group.results[res.host] = res
                    if on_done:
                        on_done(res)
        finally:
            for conn in opened:
                conn.close()
        order = [h.name for h in self.cluster.hosts()]
        group.results = dict(sorted(group.results.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 1 << 30))
        return group

    def __enter__(self) -> "ClusterSSH":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def error_summary(exc: BaseException, lines: int = 6) -> str:
    """One short text for a host's error: command, exit code and stderr tail where there is one; for a daemon
    that did not come up (``@@daemon NAME WHAT`` in its output, see provision's start scripts), WHAT and the
    daemon's own last error lines instead of the tail."""
    if isinstance(exc, CommandError):
        code = "no exit code" if exc.exit_code_ is None else f"exit {exc.exit_code_}"
        text = exc.stderr or exc.stdout
        words = daemon_words(text)
        if words is not None:
            return f"`{exc.command}` failed ({code}): {words}"
        tail = CommandError.tail(text, lines)
        return f"`{exc.command}` failed ({code})" + (f": {tail}" if tail else "")
    if isinstance(exc, UnreachableError):
        return f"unreachable: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


_LOG_STAMP = re.compile(r"^(\[[^\]]*\]\s*|\d{4}-\d\d-\d\d[ T][\d:.]+( [+-]\d{4})?\s+|\w{3} \d+ [\d:]+ \S+ \S+: )")
_ERROR_WORD = re.compile(r"\b(error|fatal|failed)\b", re.I)
# Errors Slurm 22.05 logs at every start without slurmdbd or pmix: never the reason a daemon stopped.
_HARMLESS = re.compile(r"Job accounting information gathered, but not stored|can not load PMIx library|mpi/pmix", re.I)


def daemon_words(text: str, keep: int = 3) -> str | None:
    """``NAME WHAT: line; line`` from a failed daemon start's output (None without its ``@@daemon`` line): the
    last ``keep`` distinct lines of the start output, log or journal that say error, fatal or failed (the last
    lines when none do), without their timestamps."""
    found = re.search(r"^@@daemon (.*)$", text, re.M)
    if not found:
        return None
    seen: dict[str, str] = {}
    body = [ln.strip() for ln in text[found.end():].splitlines() if ln.strip()]
    for line in [ln for ln in body if _ERROR_WORD.search(ln) and not _HARMLESS.search(ln)] or body[-keep:]:
        bare = " ".join(_LOG_STAMP.sub("", line).split())
        key = re.split(r"(?i)\b(?:error|fatal):", bare)[-1].strip().lower()  # "munged: Error: X" and "Error: X"
        seen.pop(key, None)
        seen[key] = bare
    return found.group(1) + (": " + "; ".join(list(seen.values())[-keep:]) if seen else "")


class HeadRunner:
    """Runs Slurm commands on the cluster's first reachable head over one SSH connection (a ``Runner`` for the
    Slurm backend): ``runner(argv, stdin) -> subprocess.CompletedProcess``. The command line is built with
    shlex.join, so every argument reaches the remote command as literal text. Calls from several threads run at
    the same time, each on its own exec channel of the one connection (a caller that needs several commands, such
    as `status`, can wait for one round trip instead of one per command). On the head, Slurm reads the
    node's own slurm.conf (:data:`slurmkit.slurm.DEFAULT_CONF` unless given, named explicitly through SLURM_CONF)."""

    def __init__(self, cluster: Cluster, base_dir: Path, slurm_conf: str | None = None, timeout: float = 120):
        from slurmkit.slurm import DEFAULT_CONF

        self.ssh = ClusterSSH(cluster, base_dir, fabric=False)
        self.slurm_conf = slurm_conf or DEFAULT_CONF
        self.timeout = timeout
        self._conn: Conn | None = None
        self._lock = threading.Lock()

    def _connection(self) -> Conn:
        if self._conn is None:
            errors = []
            for host in [h for h in self.ssh.cluster.hosts() if h.role == "head"]:
                try:
                    self._conn = self.ssh.connect(host)
                    break
                except UnreachableError as exc:
                    errors.append(f"{host.name}: {exc.reason}")
            if self._conn is None:
                raise UnreachableError("every head", "; ".join(errors))
        return self._conn

    def __call__(self, argv: list[str], stdin: str | None = None):
        import subprocess

        command = f"SLURM_CONF={shlex.quote(self.slurm_conf)} " + shlex.join(argv)
        with self._lock:  # one connection, opened once; the commands themselves run on channels of their own
            conn = self._connection()
        res = conn.run(command, check=False, input=stdin, timeout=self.timeout)
        return subprocess.CompletedProcess(argv, res.exit_code, res.stdout, res.stderr)

    @property
    def host(self) -> str:
        return self._connection().name

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.ssh.close()


def read_ssh_config(path: str | os.PathLike, hosts: list[str]) -> dict[str, dict[str, Any]]:
    """Resolve each host through an OpenSSH config file (paramiko's parser, the one Fabric uses)."""
    from paramiko import SSHConfig
    from paramiko.ssh_exception import ConfigParseError

    from slurmkit.errors import ConfigError, Problem

    p = Path(path).expanduser()
    try:
        cfg = SSHConfig.from_path(str(p))
        return {h: dict(cfg.lookup(h)) for h in hosts}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(p), [Problem("", f"cannot read SSH config: {exc}")]) from None
    except (ConfigParseError, ValueError) as exc:
        # paramiko's messages name the line's text ("Unparsable line 0"), not its number
        raise ConfigError(str(p), [Problem("", f"not an OpenSSH config: {exc}")]) from None
