"""The shared task store: Redis Streams, for several processes or machines.

Layout (``prefix`` defaults to ``trioapi``)
===========================================

- ``{prefix}:tasks``: a stream, one entry per task waiting or held (fields
  ``id``, ``name``, ``payload``, ``enqueued_at``, and ``run_at`` or
  ``failures`` when committed with them).
- consumer group ``{prefix}`` on it; each process is one consumer, named by
  its owner id. An entry delivered to a consumer and not yet acknowledged is
  in that consumer's pending list: that is what *held* means here.
- ``{prefix}:meta:{task id}``: a hash per task that was handed out at least
  once: ``starts``, ``failures``, ``run_at``, ``error``, and ``entry`` (its
  current stream entry id).
- ``{prefix}:retrying:held`` and ``{prefix}:retrying:free``: sets of the ids
  of tasks that failed and have not started again, held by a process (waiting
  out their backoff) or back in the stream (released while waiting). They
  exist so that :meth:`RedisStore.counts` is a handful of O(1) commands.
- ``{prefix}:dead``: a stream of dead letters (never trimmed;
  ``python -m trioapi tasks --store URL --dead purge`` empties it).
- ``{prefix}:owners``: a hash, owner id → JSON (host, pid, started,
  heartbeat, lease) of every process with the store open.

Every key starts with the prefix, so one Redis database can hold several
apps' tasks. Redis Cluster is not supported (the keys of one task span hash
slots, and the client is not a cluster client).

How the protocol maps onto streams
==================================

``commit`` XADDs the tasks in one ``MULTI``/``EXEC``: another client sees all
of them or none. Redis has no rollback: a command that fails inside ``EXEC``
does not undo the others, but an XADD only fails that way on a key of the
wrong type. The commit is as durable as the server's persistence makes it:
with ``appendonly yes`` and ``appendfsync always`` it is on disk when
``commit`` returns; with ``appendfsync everysec`` (Redis's default once AOF
is on) a crash of the *Redis server* can lose the last second; without AOF,
everything since the last snapshot. A crash of *this* process loses nothing
committed.

``claims_on_commit`` is False: an XADDed entry cannot be put straight into a
consumer's pending list (only XREADGROUP delivers), so ``commit(claimed=True)``
queues the tasks like ``commit(claimed=False)`` and the runtime claims them
back; another process may take them first, which is the point of a shared
store.

``claim`` hands out, oldest first: entries :meth:`RedisStore.recover` took
over from processes that are gone, then entries idle longer than the lease in
any consumer's pending list (``XAUTOCLAIM``: a process that stopped renewing),
then new ones (``XREADGROUP … >``, not blocking). Each counts a start in the
task's hash. A stream cannot skip an entry that is not due, so a retried task
whose ``run_at`` is still ahead is handed out with its ``run_at`` and the
runtime waits for it. Between the delivery and the counting of its start
there is one round trip: a crash there undercounts ``attempt`` by one.

A process renews its lease (``renew``) by writing its heartbeat and resetting
the idle time of every entry it holds (``XCLAIM … JUSTID`` to itself, only
for entries still in its own pending list), so ``XAUTOCLAIM`` never takes
over a task whose process is alive and well. ``recover`` looks for consumers
whose owner is gone (lease expired, or on the same host a dead or reused pid,
or no owner entry at all: a process that closed the store) and moves their
pending entries to this process in one Lua script, which then deletes the
consumer: a restart after ``SIGKILL`` resumes at once instead of waiting out
a lease. Those entries are handed out by the next ``claim``.

``release`` gives a task back by XADDing a copy of its entry (same task id;
its hash, and so its starts, failures and ``run_at``, stays) and acknowledging
and deleting the old entry, in one ``MULTI``: the task goes to the tail of
the stream. ``ack`` and ``cancel`` acknowledge and delete the entry and the
hash; ``dead`` does that and XADDs a dead letter. ``retry`` only writes the
hash: the entry stays pending, held. These writes are posted and sent in one
pipeline per batch of the store's thread.

States, as :meth:`RedisStore.counts` reports them
=================================================

- ``retrying``: tasks that failed and have not started again, held or back
  in the stream (the two ``retrying`` sets);
- ``running``: the other entries in some consumer's pending list: handed out
  to a process (running, or about to), taken over by ``recover`` and not yet
  handed out, or held by a process that is gone and not yet recovered;
- ``queued``: the other entries, not delivered to any consumer yet;
- ``dead``: the dead letters.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, final

import attrs

from .._exceptions import TaskStoreError
from ._batcher import Batcher, Op
from .base import DeadLetter, Owner, TaskRecord, TaskStore, owner_is_gone

if TYPE_CHECKING:
    import redis
    import redis.client
    import redis.commands.core

_INSTALL = "pip install 'trioapi[redis]'"

# Our options in the URL; the rest of the query goes to redis-py.
_OPTIONS = ("lease", "prefix")

# Schemes redis-py does not know but that name the same protocol.
_ALIASES = {"valkey": "redis", "valkeys": "rediss"}

# A blocking client without timeouts would hang the store's thread (and every
# request's commit) on a server that stopped answering. The URL may say otherwise.
_TIMEOUTS = {"socket_timeout": 10.0, "socket_connect_timeout": 5.0}

# Entry ids per script call in renew: Lua's unpack() has a stack limit.
_RENEW_CHUNK = 500

# Moves what a gone consumer holds to this one and deletes it, in one step:
# XGROUP DELCONSUMER drops the entries a consumer still holds, which would
# then never be delivered again. The loop is bounded; what is left after it
# (over 100,000 entries) keeps the consumer, and the next recover goes on.
_TAKE_OVER = """
local stream, group, gone, me = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local taken = {}
for _ = 1, 200 do
  local page = redis.call('XPENDING', stream, group, '-', '+', 500, gone)
  if #page == 0 then break end
  local ids = {}
  for i, pending in ipairs(page) do ids[i] = pending[1] end
  for _, entry in ipairs(redis.call('XCLAIM', stream, group, me, 0, unpack(ids))) do
    -- an entry deleted from the stream comes back as nil (false) on Redis 6.2
    if type(entry) == 'table' then taken[#taken + 1] = entry end
  end
end
if #redis.call('XPENDING', stream, group, '-', '+', 1, gone) == 0 then
  redis.call('XGROUP', 'DELCONSUMER', stream, group, gone)
end
return taken
"""

# Resets the idle time of the given entries that this consumer still holds.
# XCLAIM to itself alone would also steal back an entry that another process
# took over meanwhile (and is running).
_RENEW = """
local stream, group, me = KEYS[1], ARGV[1], ARGV[2]
local claim = {'XCLAIM', stream, group, me, 0}
for i = 3, #ARGV do
  if #redis.call('XPENDING', stream, group, ARGV[i], ARGV[i], 1, me) > 0 then
    claim[#claim + 1] = ARGV[i]
  end
end
if #claim == 5 then return 0 end
claim[#claim + 1] = 'JUSTID'
return #redis.call(unpack(claim))
"""


# Counts a start of each claimed task and files its failures and run_at
# (from its hash, else from its entry), in one atomic step for the whole
# claim: five commands per task from the client cost more than the task.
# ARGV: the key prefix, now, then (task id, entry id, failures, run_at) per
# task; returns (starts, failures, run_at) per task, run_at as text.
_START = """
local held, free = KEYS[1], KEYS[2]
local prefix, now = ARGV[1], tonumber(ARGV[2])
local found = {}
for i = 3, #ARGV, 4 do
  local id, entry = ARGV[i], ARGV[i + 1]
  local meta = prefix .. ':meta:' .. id
  local stored = redis.call('HMGET', meta, 'failures', 'run_at')
  local failures = tonumber(stored[1] or ARGV[i + 2]) or 0
  -- run_at stays text: Lua's tostring would round a float to 14 digits.
  local run_at_text = stored[2] or ARGV[i + 3]
  local run_at = tonumber(run_at_text) or 0
  local starts = redis.call('HINCRBY', meta, 'starts', 1)
  redis.call('HSET', meta, 'entry', entry, 'failures', failures, 'run_at', run_at_text)
  if run_at > now then
    redis.call('SMOVE', free, held, id)
  else
    redis.call('SREM', free, id)
    redis.call('SREM', held, id)
  end
  found[#found + 1] = starts
  found[#found + 1] = failures
  found[#found + 1] = run_at_text
end
return found
"""


# Gives an entry back (see _write_release) if this consumer still holds it.
_RELEASE = """
local stream, held, free = KEYS[1], KEYS[2], KEYS[3]
local group, me, entry, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if #redis.call('XPENDING', stream, group, entry, entry, 1, me) == 0 then return 0 end
redis.call('XADD', stream, '*', 'id', id, 'name', ARGV[5], 'payload', ARGV[6],
  'enqueued_at', ARGV[7])
redis.call('XACK', stream, group, entry)
redis.call('XDEL', stream, entry)
redis.call('SMOVE', held, free, id)
return 1
"""


@final
@attrs.frozen
class _Keys:
    """The names of a store's keys, all under one prefix."""

    prefix: str

    @property
    def stream(self) -> str:
        return f"{self.prefix}:tasks"

    @property
    def group(self) -> str:
        return self.prefix

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead"

    @property
    def owners(self) -> str:
        return f"{self.prefix}:owners"

    @property
    def held_retrying(self) -> str:
        return f"{self.prefix}:retrying:held"

    @property
    def free_retrying(self) -> str:
        return f"{self.prefix}:retrying:free"

    def meta(self, task_id: str) -> str:
        return f"{self.prefix}:meta:{task_id}"


@final
@attrs.frozen
class _Held:
    """A task this process holds: what releasing or dead-lettering it needs."""

    entry: str
    name: str
    payload: str
    enqueued_at: float
    starts: int


@final
@attrs.define(eq=False)
class _Link:
    """The store's thread's connection: the client and its scripts."""

    client: redis.Redis
    take_over: redis.commands.core.Script
    renew: redis.commands.core.Script
    start: redis.commands.core.Script
    #: The client's base exception (the module is imported only by open()).
    error: type[Exception]


# An entry as the client returns it: (entry id, fields).
_Entry = tuple[str, dict[str, str]]


@final
class RedisStore(TaskStore):
    """Durable tasks in Redis Streams, shared by every process on the same keys.

    Args:
        url: The server: ``redis://[[user]:password@]host[:port][/db]``,
            ``rediss://`` for TLS, ``unix:///path/to.sock?db=0``. Query
            options other than trioapi's go to redis-py (``socket_timeout``
            and so on).
        prefix: The start of every key, so that apps can share a database.
        lease: Seconds an entry may sit in a process's pending list without
            a renewal before another process takes it over (a dead process
            on the same host is seen at once, by its pid).

    Raises:
        ValueError: The URL or an option is not one the store can use.
    """

    claims_on_commit = False

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "trioapi",
        lease: float = 30.0,
    ) -> None:
        if not lease > 0:
            msg = f"lease must be a positive number of seconds, not {lease!r}"
            raise ValueError(msg)
        if not prefix:
            msg = "prefix must not be empty (the default is 'trioapi')"
            raise ValueError(msg)
        self._connect_url, options = _split_url(url)
        if options:
            msg = (
                f"give {', '.join(sorted(options))} as keyword arguments, or use "
                f"RedisStore.from_url({_hide_password(url)!r})"
            )
            raise ValueError(msg)
        self.url = _hide_password(url)
        self.prefix = prefix
        self.lease = lease
        self._keys = _Keys(prefix)
        self._owner: Owner | None = None
        self._batcher: Batcher[_Link] | None = None
        self._redis: ModuleType | None = None
        # Trio-thread state: what this process holds (task id → entry), what
        # recover took over and claim has not handed out yet, XAUTOCLAIM's cursor.
        self._held: dict[str, _Held] = {}
        self._forgets: list[tuple[str, str]] = []  # acks waiting for the thread
        self._forgets_lock = threading.Lock()
        self._recovered: list[_Entry] = []
        self._cursor = "0-0"

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """A store for ``url``, with trioapi's options taken from its query.

        ``redis://:password@host:6379/0?lease=30&prefix=trioapi``; ``rediss://``
        for TLS; ``valkey://`` and ``valkeys://`` mean the same as ``redis://``
        and ``rediss://``; ``unix:///path/to.sock``. Other query options go to
        redis-py.

        Raises:
            ValueError: The URL or an option is not one the store can use.
        """
        connect_url, options = _split_url(url)
        try:
            lease = float(options.get("lease", 30.0))
        except ValueError:
            msg = f"lease in {_hide_password(url)!r} must be a number of seconds"
            raise ValueError(msg) from None
        store = cls(connect_url, prefix=options.get("prefix", "trioapi"), lease=lease)
        store.url = _hide_password(url)
        return store

    # --- the thread ----------------------------------------------------------------

    def _connect(self) -> _Link:
        module = self._module()
        try:
            client: redis.Redis = module.Redis.from_url(
                self._connect_url, decode_responses=True, **_TIMEOUTS
            )
        except (TypeError, ValueError) as error:
            msg = f"redis-py cannot use the URL {self.url}: {error}"
            raise ValueError(msg) from error
        try:
            try:
                version = str(client.info("server").get("redis_version", "0"))
            except TypeError as error:  # an option in the URL redis-py does not take
                msg = f"redis-py cannot use an option of the URL {self.url}: {error}"
                raise ValueError(msg) from error
            if _version(version) < (6, 2):
                msg = (
                    f"the Redis task store needs Redis 6.2 or newer (for XAUTOCLAIM); "
                    f"{self.url} runs {version}: upgrade it, or use sqlite:///tasks.db"
                )
                raise TaskStoreError(msg)
            try:
                client.xgroup_create(self._keys.stream, self._keys.group, id="0", mkstream=True)
            except module.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
            return _Link(
                client,
                client.register_script(_TAKE_OVER),
                client.register_script(_RENEW),
                client.register_script(_START),
                module.RedisError,
            )
        except BaseException:
            client.close()
            raise

    def _run_batch(self, link: _Link, ops: list[Op]) -> None:
        # Posted writes and commits go out as one MULTI/EXEC per run of them;
        # an operation that reads (claim, recover, counts…) runs on its own.
        start = 0
        while start < len(ops):
            end = start
            while end < len(ops) and ops[end].fn in _WRITES:
                end += 1
            if end > start:
                self._run_writes(link, ops[start:end])
                start = end
            else:
                op = ops[start]
                op.run(link)
                if op.error is not None:
                    op.error = self._failure(op.error)
                start += 1

    def _run_writes(self, link: _Link, ops: list[Op]) -> None:
        module = self._module()
        pipe = link.client.pipeline(transaction=True)
        spans: list[tuple[int, int]] = []
        for op in ops:
            first = len(pipe)
            try:
                op.fn(pipe, *op.args)
            except Exception as error:
                del pipe.command_stack[first:]
                op.error = self._failure(error)
            spans.append((first, len(pipe)))
        if not len(pipe):
            return
        try:
            results = pipe.execute(raise_on_error=False)
        except module.RedisError as error:
            if len(ops) > 1 and not isinstance(error, module.ConnectionError | module.TimeoutError):
                # Nothing was applied (EXECABORT, or a value that cannot be
                # encoded): one operation's fault. Each again, on its own.
                for op in ops:
                    if op.error is None:
                        self._run_writes(link, [op])
                return
            for op in ops:
                if op.error is None:
                    op.error = self._failure(error)
            return
        for op, (first, last) in zip(ops, spans, strict=True):
            failed = next((r for r in results[first:last] if isinstance(r, Exception)), None)
            if failed is not None and op.error is None:
                op.error = self._failure(failed)

    def _failure(self, error: BaseException) -> BaseException:
        module = self._module()
        if isinstance(error, module.RedisError):
            failure = TaskStoreError(f"the Redis task store {self.url} failed: {error}")
            failure.__cause__ = error
            return failure
        return error

    @staticmethod
    def _disconnect(link: _Link) -> None:
        link.client.close()

    def _module(self) -> Any:
        assert self._redis is not None
        return self._redis

    def _thread(self) -> Batcher[_Link]:
        if self._batcher is None or self._owner is None:
            msg = "the Redis task store is not open (the app's lifespan opens it)"
            raise RuntimeError(msg)
        return self._batcher

    def _me(self) -> Owner:
        self._thread()
        assert self._owner is not None
        return self._owner

    # --- lifecycle -------------------------------------------------------------------

    async def open(self, owner: Owner) -> None:
        if self._batcher is not None:
            msg = "the Redis task store is open already"
            raise RuntimeError(msg)
        self._redis = _import_client()
        batcher: Batcher[_Link] = Batcher(
            f"trioapi task store {self.url}", self._connect, self._run_batch, self._disconnect
        )
        try:
            await batcher.start()
        except self._redis.RedisError as error:
            msg = (
                f"cannot reach the Redis task store {self.url} ({error}): start the server, "
                "or fix the URL (task_store= or TRIOAPI_TASK_STORE)"
            )
            raise TaskStoreError(msg) from error
        self._batcher = batcher
        self._owner = owner
        self._held.clear()
        self._recovered.clear()
        self._cursor = "0-0"
        try:
            await batcher.call(_register, self._keys, owner, time.time())
        except BaseException:
            self._batcher = None
            self._owner = None
            await batcher.stop()
            raise

    async def close(self) -> None:
        batcher, owner = self._batcher, self._owner
        if batcher is None or owner is None:
            return
        try:
            await batcher.flush()
            # What it still holds stays pending: without an owner entry, the
            # next recover of any process takes it over at once.
            await batcher.call(_unregister, self._keys, owner.id)
        finally:
            self._batcher = None
            self._owner = None
            self._held.clear()
            self._recovered.clear()
            await batcher.stop()

    # --- the runtime's calls ---------------------------------------------------------

    async def commit(self, tasks: Sequence[TaskRecord], *, claimed: bool) -> None:
        # ``claimed`` cannot be honoured (see the module's docstring): queued.
        del claimed
        self._me()
        now = time.time()
        entries = [_fields(task, task.enqueued_at or now) for task in tasks]
        if entries:
            await self._thread().call(_write_commit, self._keys, entries)

    async def claim(self, limit: int) -> list[TaskRecord]:
        owner = self._me()
        recovered, self._recovered = self._recovered[:limit], self._recovered[limit:]
        try:
            claimed: _Claimed = await self._thread().call(
                _claim,
                self._keys,
                owner.id,
                recovered,
                limit,
                int(self.lease * 1000),
                self._cursor,
                frozenset(self._held),
            )
        except BaseException:
            # Not handed out: keep them for the next claim (they are pending
            # here, and renewed, so nobody else would take them).
            self._recovered[:0] = recovered
            raise
        self._cursor = claimed.cursor
        if claimed.unhanded:
            self._recovered[:0] = claimed.unhanded
        if claimed.error is not None:
            raise self._failure(claimed.error)
        for record, entry in claimed.records:
            self._held[record.id] = _Held(
                entry, record.name, record.payload, record.enqueued_at, record.attempt
            )
        return [record for record, _ in claimed.records]

    async def recover(self) -> int:
        owner = self._me()
        taken: list[_Entry] = await self._thread().call(_recover, self._keys, owner.id)
        known = {entry for entry, _ in self._recovered}
        self._recovered.extend(
            (entry, fields)
            for entry, fields in taken
            if entry not in known and fields.get("id") not in self._held
        )
        self._recovered.sort(key=lambda item: _entry_order(item[0]))
        return len(taken)

    async def renew(self) -> None:
        owner = self._me()
        entries = [held.entry for held in self._held.values()]
        entries += [entry for entry, _ in self._recovered]
        await self._thread().call(_renew, self._keys, owner, time.time(), entries)

    def ack(self, task_id: str) -> None:
        self._forget(task_id)

    def cancel(self, task_id: str) -> None:
        self._forget(task_id)

    def _forget(self, task_id: str) -> None:
        thread = self._thread()
        held = self._held.pop(task_id, None)
        if held is None:
            thread.post(_by_id, self._keys, task_id, _write_forget, ())
            return
        # Acks pile up in one list that one posted write empties: a batch of
        # a thousand acks is five commands (XACK, XDEL, DEL, SREM, SREM with
        # many arguments), not five thousand.
        with self._forgets_lock:
            self._forgets.append((task_id, held.entry))
            first = len(self._forgets) == 1
        if first:
            thread.post(_write_forget_pending, self._keys, self)

    def started(self, task_id: str, attempt: int) -> None:
        thread = self._thread()
        held = self._held.get(task_id)
        if held is not None:
            self._held[task_id] = attrs.evolve(held, starts=max(held.starts, attempt))
        thread.post(_write_started, self._keys, task_id)

    def retry(self, task_id: str, failures: int, run_at: float, error: str) -> None:
        self._thread().post(_write_retry, self._keys, task_id, failures, run_at, error)

    def dead(self, task_id: str, failures: int, error: str, traceback: str) -> None:
        thread = self._thread()
        held = self._held.pop(task_id, None)
        args = (failures, error, traceback, time.time())
        if held is None:
            thread.post(_by_id, self._keys, task_id, _write_dead, args)
        else:
            thread.post(_write_dead, self._keys, task_id, held, *args)

    def release(self, task_ids: Sequence[str]) -> None:
        thread = self._thread()
        for task_id in task_ids:
            held = self._held.pop(task_id, None)
            me = self._me().id
            if held is None:
                thread.post(_by_id, self._keys, task_id, _write_release, (me,))
            else:
                thread.post(_write_release, self._keys, task_id, held, me)

    async def flush(self) -> None:
        await self._thread().flush()

    @property
    def batches(self) -> int:
        """Batches run so far by this process (posted writes share one pipeline each)."""
        return self._batcher.batches if self._batcher is not None else 0

    # --- operations ------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        found: dict[str, int] = await self._thread().call(_counts, self._keys)
        return found

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        letters: list[DeadLetter] = await self._thread().call(_dead_letters, self._keys, limit)
        return letters

    async def retry_dead(self, task_id: str) -> bool:
        done: bool = await self._thread().call(_retry_dead, self._keys, task_id, time.time())
        return done

    async def purge_dead(self) -> int:
        purged: int = await self._thread().call(_purge_dead, self._keys)
        return purged


# --- URLs ----------------------------------------------------------------------------


def _import_client() -> ModuleType:
    try:
        import redis  # an optional extra: imported when a store opens, not before
    except ImportError as error:
        msg = f"the Redis task store needs the redis client: {_INSTALL}"
        raise RuntimeError(msg) from error
    return redis


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """The URL redis-py connects to, and trioapi's options taken out of its query."""
    parts = urllib.parse.urlsplit(url)
    scheme = _ALIASES.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("redis", "rediss", "unix"):
        msg = (
            f"not a Redis URL: {_hide_password(url)!r} "
            "(write redis://host:6379/0, rediss://… for TLS, or unix:///path/to.sock)"
        )
        raise ValueError(msg)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    options = {name: value for name, value in query if name in _OPTIONS}
    rest = [(name, value) for name, value in query if name not in _OPTIONS]
    if any(name == "protocol" for name, _ in rest):
        msg = f"the Redis task store speaks RESP2: remove protocol= from {_hide_password(url)!r}"
        raise ValueError(msg)
    connect = parts._replace(scheme=scheme, query=urllib.parse.urlencode(rest))
    return _join(connect), options


def _hide_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"{userinfo}@{host}"
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in query):
        hidden = [(name, "***" if name == "password" else value) for name, value in query]
        parts = parts._replace(query=urllib.parse.urlencode(hidden))
    return _join(parts._replace(netloc=netloc))


def _join(parts: urllib.parse.SplitResult) -> str:
    # Not urlunsplit(): it writes unix:///path as unix:/path, which redis-py refuses.
    url = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if parts.query:
        url += f"?{parts.query}"
    if parts.fragment:
        url += f"#{parts.fragment}"
    return url


def _version(text: str) -> tuple[int, ...]:
    numbers: list[int] = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        numbers.append(int(digits or 0))
    return tuple(numbers)


def _entry_order(entry: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry.partition("-")
    return int(milliseconds), int(sequence or 0)


def _fields(task: TaskRecord, enqueued_at: float) -> dict[str, str]:
    fields = {
        "id": task.id,
        "name": task.name,
        "payload": task.payload,
        "enqueued_at": repr(enqueued_at),
    }
    if task.run_at:
        fields["run_at"] = repr(task.run_at)
    if task.failures:
        fields["failures"] = str(task.failures)
    return fields


# --- writes, queued on the batch's pipeline (MULTI/EXEC) ---------------------------------


def _write_commit(pipe: redis.client.Pipeline, keys: _Keys, entries: list[dict[str, str]]) -> None:
    for fields in entries:
        pipe.xadd(keys.stream, fields)  # type: ignore[arg-type]


def _write_forget(pipe: redis.client.Pipeline, keys: _Keys, task_id: str, held: _Held) -> None:
    pipe.xack(keys.stream, keys.group, held.entry)
    pipe.xdel(keys.stream, held.entry)
    pipe.delete(keys.meta(task_id))
    pipe.srem(keys.held_retrying, task_id)
    pipe.srem(keys.free_retrying, task_id)


def _write_forget_pending(pipe: redis.client.Pipeline, keys: _Keys, store: RedisStore) -> None:
    # On the store's thread. The lock makes "append" and "take the list"
    # exclusive: an ack lands in this list or the next, never in one already
    # taken; the loop thread posts this again for a fresh list.
    with store._forgets_lock:
        pending, store._forgets = store._forgets, []
    if not pending:
        return
    task_ids = [task_id for task_id, _ in pending]
    entries = [entry for _, entry in pending]
    pipe.xack(keys.stream, keys.group, *entries)
    pipe.xdel(keys.stream, *entries)
    pipe.delete(*[keys.meta(task_id) for task_id in task_ids])
    pipe.srem(keys.held_retrying, *task_ids)
    pipe.srem(keys.free_retrying, *task_ids)


def _write_started(pipe: redis.client.Pipeline, keys: _Keys, task_id: str) -> None:
    # Each call is one more start of a task this process holds: an increment,
    # which also counts right when another process took it over meanwhile.
    pipe.hincrby(keys.meta(task_id), "starts", 1)
    pipe.srem(keys.held_retrying, task_id)
    pipe.srem(keys.free_retrying, task_id)


def _write_retry(
    pipe: redis.client.Pipeline,
    keys: _Keys,
    task_id: str,
    failures: int,
    run_at: float,
    error: str,
) -> None:
    mapping = {"failures": failures, "run_at": repr(run_at), "error": error}
    pipe.hset(keys.meta(task_id), mapping=mapping)  # type: ignore[arg-type]
    pipe.sadd(keys.held_retrying, task_id)


def _write_dead(
    pipe: redis.client.Pipeline,
    keys: _Keys,
    task_id: str,
    held: _Held,
    failures: int,
    error: str,
    traceback: str,
    now: float,
) -> None:
    letter = {
        "id": task_id,
        "name": held.name,
        "attempts": held.starts,
        "failures": failures,
        "error": error,
        "traceback": traceback,
        "payload": held.payload,
        "died_at": repr(now),
        "enqueued_at": repr(held.enqueued_at),
    }
    pipe.xadd(keys.dead, letter)  # type: ignore[arg-type]
    _write_forget(pipe, keys, task_id, held)


def _write_release(
    pipe: redis.client.Pipeline, keys: _Keys, task_id: str, held: _Held, me: str
) -> None:
    # A new entry at the tail (the old one cannot be undelivered); the hash,
    # with its starts, failures and run_at, stays. Fenced: only while the
    # entry is still in this consumer's pending list. A process that paused
    # past its lease must not give back a task another process took over and
    # runs (XACK does not ask whose the entry is).
    pipe.eval(
        _RELEASE,
        3,
        keys.stream,
        keys.held_retrying,
        keys.free_retrying,
        keys.group,
        me,
        held.entry,
        task_id,
        held.name,
        held.payload,
        repr(held.enqueued_at),
    )


_WRITES = frozenset(
    {
        _write_commit,
        _write_forget,
        _write_forget_pending,
        _write_started,
        _write_retry,
        _write_dead,
        _write_release,
    }
)


# --- operations that read, run on their own ------------------------------------------------


def _by_id(link: _Link, keys: _Keys, task_id: str, write: Any, args: tuple[Any, ...]) -> None:
    # A write for a task this process does not know it holds (it should not
    # happen): find its entry through its hash, then write as usual.
    client = link.client
    entry: Any = client.hget(keys.meta(task_id), "entry")
    found: Any = client.xrange(keys.stream, entry, entry, count=1) if entry else []
    if not found:
        if write is _write_forget:
            pipe = client.pipeline(transaction=True)
            pipe.delete(keys.meta(task_id))
            pipe.srem(keys.held_retrying, task_id)
            pipe.srem(keys.free_retrying, task_id)
            pipe.execute()
        return  # gone already: nothing to release or dead-letter
    entry_id, fields = found[0]
    starts = int(client.hget(keys.meta(task_id), "starts") or 0)
    held = _Held(
        entry_id,
        fields.get("name", ""),
        fields.get("payload", ""),
        float(fields.get("enqueued_at", 0) or 0),
        starts,
    )
    pipe = client.pipeline(transaction=True)
    write(pipe, keys, task_id, held, *args)
    pipe.execute()


def _register(link: _Link, keys: _Keys, owner: Owner, now: float) -> None:
    link.client.hset(keys.owners, owner.id, _owner_json(owner, now))


def _unregister(link: _Link, keys: _Keys, owner_id: str) -> None:
    link.client.hdel(keys.owners, owner_id)


def _owner_json(owner: Owner, now: float) -> str:
    return json.dumps(
        {
            "host": owner.host,
            "pid": owner.pid,
            "started": owner.started,
            "heartbeat": now,
            "lease": owner.lease,
        }
    )


@final
@attrs.frozen
class _Claimed:
    """What a claim found: records handed out, and what could not be."""

    records: list[tuple[TaskRecord, str]]
    cursor: str
    unhanded: list[_Entry] = attrs.field(factory=list)
    error: BaseException | None = None


def _claim(
    link: _Link,
    keys: _Keys,
    me: str,
    recovered: list[_Entry],
    limit: int,
    min_idle_ms: int,
    cursor: str,
    held: frozenset[str],
) -> _Claimed:
    client = link.client
    entries = list(recovered)
    if len(entries) < limit:
        reply: Any = client.xautoclaim(
            keys.stream, keys.group, me, min_idle_ms, cursor, count=limit - len(entries)
        )
        cursor = str(reply[0])
        entries += [(entry, fields) for entry, fields in reply[1] if fields]
    if len(entries) < limit:
        streams: Any = client.xreadgroup(
            keys.group, me, {keys.stream: ">"}, count=limit - len(entries)
        )
        for _, delivered in streams or ():
            entries += [(entry, fields) for entry, fields in delivered if fields]
    # An entry of a task already handed out here (XAUTOCLAIM found this
    # process late to renew) stays held, and is not handed out twice.
    fresh = sorted(
        ((entry, fields) for entry, fields in entries if fields.get("id") not in held),
        key=lambda item: _entry_order(item[0]),
    )
    if not fresh:
        return _Claimed([], cursor)
    arguments: list[Any] = [keys.prefix, repr(time.time())]
    for entry, fields in fresh:
        arguments += [
            fields["id"],
            entry,
            fields.get("failures") or "0",
            fields.get("run_at") or "0",
        ]
    try:
        started_reply: Any = link.start(
            keys=[keys.held_retrying, keys.free_retrying], args=arguments
        )
    except link.error as error:
        # Delivered here but not handed out: the next claim hands them out.
        return _Claimed([], cursor, fresh, error)
    found: list[tuple[str, dict[str, str], int, float]] = []
    starts: list[int] = []
    for index, (entry, fields) in enumerate(fresh):
        started, failures, run_at = started_reply[3 * index : 3 * index + 3]
        starts.append(int(started))
        found.append((entry, fields, int(failures), float(run_at)))
    records = [
        (
            TaskRecord(
                fields["id"],
                fields.get("name", ""),
                fields.get("payload", ""),
                int(attempt),
                failures,
                float(fields.get("enqueued_at") or 0.0),
                run_at,
            ),
            entry,
        )
        for (entry, fields, failures, run_at), attempt in zip(found, starts, strict=True)
    ]
    return _Claimed(records, cursor)


def _recover(link: _Link, keys: _Keys, me: str) -> list[_Entry]:
    client = link.client
    # One snapshot of both: a process registers before its consumer exists,
    # so a consumer seen without an owner entry has none.
    snapshot = client.pipeline(transaction=True)
    snapshot.xinfo_consumers(keys.stream, keys.group)
    snapshot.hgetall(keys.owners)
    consumers, owners = snapshot.execute()
    gone: list[str] = []
    for owner_id, text in owners.items():
        if owner_id != me and _owner_is_gone(text):
            gone.append(owner_id)
    for consumer in consumers:
        name = str(consumer["name"])
        if name != me and name not in owners and name not in gone:
            gone.append(name)
    taken: list[_Entry] = []
    for name in gone:
        reply: Any = link.take_over(keys=[keys.stream], args=[keys.group, name, me])
        for entry, flat in reply:
            fields = dict(zip(flat[0::2], flat[1::2], strict=True))
            if fields.get("id"):
                taken.append((str(entry), fields))
        client.hdel(keys.owners, name)
    return taken


def _owner_is_gone(text: str) -> bool:
    try:
        seen = json.loads(text)
        return owner_is_gone(
            str(seen["host"]),
            int(seen["pid"]),
            str(seen["started"]),
            float(seen["heartbeat"]),
            float(seen["lease"]),
        )
    except (ValueError, KeyError, TypeError):
        return True  # not written by a live process (it rewrites its entry on renew)


def _renew(link: _Link, keys: _Keys, owner: Owner, now: float, entries: list[str]) -> None:
    # Re-registers too: a process taken for gone (paused longer than its
    # lease) carries on; what was taken from it may run twice.
    link.client.hset(keys.owners, owner.id, _owner_json(owner, now))
    for start in range(0, len(entries), _RENEW_CHUNK):
        chunk = entries[start : start + _RENEW_CHUNK]
        link.renew(keys=[keys.stream], args=[keys.group, owner.id, *chunk])


def _counts(link: _Link, keys: _Keys) -> dict[str, int]:
    pipe = link.client.pipeline(transaction=True)
    pipe.xlen(keys.stream)
    pipe.xpending(keys.stream, keys.group)
    pipe.scard(keys.held_retrying)
    pipe.scard(keys.free_retrying)
    pipe.xlen(keys.dead)
    length, pending, held, free, dead = pipe.execute()
    delivered = int(pending["pending"])
    return {
        # max(): a crash between a delivery and its claim's bookkeeping can
        # leave a task in the wrong set until its next claim.
        "queued": max(0, int(length) - delivered - int(free)),
        "running": max(0, delivered - int(held)),
        "retrying": int(held) + int(free),
        "dead": int(dead),
    }


def _letter(fields: Mapping[str, str]) -> DeadLetter:
    return DeadLetter(
        fields.get("id", ""),
        fields.get("name", ""),
        int(fields.get("attempts") or 0),
        int(fields.get("failures") or 0),
        fields.get("error", ""),
        fields.get("traceback", ""),
        fields.get("payload", ""),
        float(fields.get("died_at") or 0.0),
    )


def _dead_letters(link: _Link, keys: _Keys, limit: int) -> list[DeadLetter]:
    if limit <= 0:
        return []
    letters: Any = link.client.xrange(keys.dead, count=limit)
    return [_letter(fields) for _, fields in letters]


def _find_dead(link: _Link, keys: _Keys, task_id: str) -> _Entry | None:
    # Dead letters are few and looked up by hand: a scan, page by page.
    start = "-"
    for _ in range(1_000_000):
        page: Any = link.client.xrange(keys.dead, start, "+", count=500)
        for entry, fields in page:
            if fields.get("id") == task_id:
                return entry, fields
        if len(page) < 500:
            return None
        start = "(" + page[-1][0]
    return None


def _retry_dead(link: _Link, keys: _Keys, task_id: str, now: float) -> bool:
    found = _find_dead(link, keys, task_id)
    if found is None:
        return False
    entry, letter = found
    fields = {
        "id": task_id,
        "name": letter.get("name", ""),
        "payload": letter.get("payload", ""),
        "enqueued_at": letter.get("enqueued_at") or repr(now),
    }
    meta = keys.meta(task_id)
    pipe = link.client.pipeline(transaction=True)
    pipe.xadd(keys.stream, fields)  # type: ignore[arg-type]
    pipe.xdel(keys.dead, entry)
    pipe.delete(meta)
    # A fresh count of failures; starts go on counting (attempt counts starts).
    pipe.hset(meta, "starts", int(letter.get("attempts") or 0))
    pipe.execute()
    return True


def _purge_dead(link: _Link, keys: _Keys) -> int:
    pipe = link.client.pipeline(transaction=True)
    pipe.xlen(keys.dead)
    pipe.delete(keys.dead)
    count, _ = pipe.execute()
    return int(count)
