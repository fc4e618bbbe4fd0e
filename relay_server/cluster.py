"""One node of a relay cluster: routing across nodes on Redis (docs/RELAY.md, "Several
nodes"; PROTOCOL §3).

A single relay needs none of this: `Forwarding.forward` finds both endpoints in its
registry and writes the frame. On a cluster the same path runs unchanged for two
endpoints on the same node; only a frame whose destination is not on this node
(the registry's miss, where a single relay answers `peer_offline`) comes here.

- **Presence.** Each registered endpoint has a key `hs:p:<role><id>` naming its node
  and connection (`<node>|<seq>`), written when it registers (SET … GET, so the
  writer learns whom it replaced) with an expiry of `presence_ttl_s`, refreshed every
  third of it while connected, and removed on disconnect only by the connection
  that wrote it (compare-and-delete, in Lua). A refresh that finds another value
  has been replaced; one that finds none (Redis restarted) writes it again.
- **Inboxes.** Every node subscribes to its own channel `hs:inbox:<node>` (the node
  name with a suffix drawn at each start). A frame for an endpoint elsewhere is
  looked up (then cached) and published to that node's inbox with what the other
  node needs to check the route (the source's role, id and account, §3.2); that node
  checks and writes it to the websocket as `forward` does. A node that no longer
  holds the endpoint answers GONE and the sender looks it up again, once; a publish
  that reaches no subscriber (a dead node) marks the entries naming that node stale
  (compare-and-delete) and the frames are looked up again, once. Frames waiting for
  one node are batched into one PUBLISH while the previous one is in flight, within
  `outbox_bytes` per node: the bounded queue between websockets and Redis; beyond it
  frames are dropped. Redis pub/sub is at-most-once: a lost frame ends that Noise
  session (PROTOCOL §3) and the endpoints re-handshake.
- **Replacement.** The registering node learns the previous value from its SET and
  sends REPLACE to that node, which closes the older connection with 4002 at once;
  the refresh catches a lost REPLACE.
- **Events** on the channel `hs:events`: revoked tokens, a deleted account, a removed
  device and PRESENCE changes, applied by every node to its own connections. After
  its subscription was rebuilt (events may have been missed) a node checks its
  controllers' tokens and its devices' owners against the database.
- **Probes and health.** Every `probe_interval_s` the node publishes a probe to its
  own inbox; one not back within `probe_timeout_s` is lost and the subscription is
  rebuilt (a Redis failover, a subscriber Redis dropped at its output-buffer limit,
  a client that did not resubscribe). Until a probe comes back the node cannot
  route: /healthz answers 503, upgrades are refused, and after `unroutable_grace_s`
  its endpoints are closed with 1012, so they reconnect to a node that can route.
- **Rate limits** across nodes: relay_server.cluster_limits.

A record on an inbox is `length (2) ‖ kind (1) ‖ body`; a published message is
`len(sender) (1) ‖ sender ‖ records…`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from homeseal_protocol.envelope import CloseCode, FrameType, RelayError, encode_frame
from homeseal_protocol.ids import format_id

from .cluster_limits import LeasedBucket, SharedLimiter, SharedUnavailable
from .config import Config
from .connections import ControllerConn, DeviceConn
from .forwarding import Forwarding, Verdict, answer_error
from .ratelimit import Bucket
from .registry import Registry
from .stats import Stats
from .storage import Storage, StorageError

_LOG = logging.getLogger("relay_server.cluster")

EVENTS: Final = b"hs:events"
INBOX: Final = b"hs:inbox:"

# Record kinds.
FWD: Final = 1  # a frame to deliver: role, flags, account, source id, frame
GONE: Final = 2  # the node no longer holds the destination: the FWD record back
ERR: Final = 3  # a relay-built frame (ERROR) for an endpoint of the receiving node
REPLACE: Final = 4  # close this connection (4002): a newer one registered elsewhere
PROBE: Final = 5  # a node's probe of its own inbox

DEVICE: Final = 0
CONTROLLER: Final = 1
_ROLE_KEY: Final = (b"d", b"c")

# FWD flags.
APPROVED: Final = 1  # the sender checked the route itself (a device's PAIR to a peer)
RETRIED: Final = 2  # looked up again after GONE or a dead node: no further retry

_FWD_HEAD: Final = struct.Struct("!BBBq10s")  # kind, role, flags, account, source id
_SESSION: Final = int(FrameType.SESSION)
_PAIR: Final = int(FrameType.PAIR)
_PAIR_START: Final = int(FrameType.PAIR_START)
_NO_ACCOUNT: Final = -1

# Compare-and-delete: only the connection that wrote a presence key removes it.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Refresh the node's presence keys: ARGV[1] the expiry (ms), then one value per key.
# Renews a key that still holds its value, writes one that expired (Redis restarted),
# and returns the indexes (1-based) of those another connection holds now.
_REFRESH: Final = """
local lost = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
  elseif not v then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
  else
    lost[#lost + 1] = i
  end
end
return lost
"""
REFRESH_BATCH: Final = 500
CONTROL_QUEUE: Final = 50_000


def presence_key(role: int, endpoint_id: bytes) -> bytes:
    return b"hs:p:" + _ROLE_KEY[role] + endpoint_id


def _node_of(value: bytes) -> bytes:
    return value.split(b"|", 1)[0]


def _record(kind: int, body: bytes) -> bytes:
    return (len(body) + 1).to_bytes(2, "big") + bytes((kind,)) + body


class Cluster:
    """This node's part of the cluster. Implements the registry's `ClusterHooks` and
    the HTTP API's `AccountEvents` (applied here, then told to the other nodes)."""

    def __init__(
        self,
        config: Config,
        registry: Registry,
        forwarding: Forwarding,
        storage: Storage,
        stats: Stats,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert config.redis_url is not None
        self._settings = settings = config.cluster
        self._limits = config.limits
        self._registry = registry
        self._forwarding = forwarding
        self._storage = storage
        self._stats = stats
        self._clock = clock
        self.name = settings.node_name
        self.node = f"{settings.node_name}-{secrets.token_hex(3)}".encode()
        self._inbox = INBOX + self.node
        self._batch_head = bytes((len(self.node),)) + self.node
        timeouts: dict[str, Any] = {
            "socket_connect_timeout": 2.0,
            "socket_keepalive": True,
            "retry": Retry(NoBackoff(), 0),
        }
        self.redis = aioredis.Redis.from_url(config.redis_url, socket_timeout=3.0, **timeouts)
        # The subscription's own connection reads without a timeout: probes watch it.
        self._sub_redis = aioredis.Redis.from_url(config.redis_url, socket_timeout=None, **timeouts)
        self.limiter = SharedLimiter(self.redis)
        self._release = self.redis.register_script(_RELEASE)
        self._refresh = self.redis.register_script(_REFRESH)
        self._ttl_ms = int(settings.presence_ttl_s * 1000)
        self._seq = itertools.count(1)
        # This node's presence: role ‖ id → (connection, the value its key holds).
        self._mine: dict[bytes, tuple[DeviceConn | ControllerConn, bytes]] = {}
        # Presence keys written for endpoints being registered (`reserve`).
        self._reserved: dict[bytes, bytes] = {}
        # Other nodes' endpoints this node has looked up: role ‖ id → (presence value,
        # until when it is trusted without a new lookup).
        self._where: dict[bytes, tuple[bytes, float]] = {}
        self._where_ttl = settings.presence_ttl_s / 3
        # Frames waiting for a lookup, by destination.
        self._lookups: dict[bytes, list[bytes]] = {}
        # Frames waiting to be published, by node; and their bytes.
        self._outbox: dict[bytes, list[bytes]] = {}
        self._outbox_bytes: Counter[bytes] = Counter()
        self._wake = asyncio.Event()
        self._control: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(CONTROL_QUEUE)
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: asyncio.Task[None] | None = None
        # The subscription's PubSub (tests drop its inbox channel to lose it silently).
        self.pubsub: Any = None
        self._jobs: set[asyncio.Task[Any]] = set()
        # Probes.
        self._probe_nonce = b""
        self._probe_sent = 0.0
        self._probe_seen = -1e9
        self._unroutable_since: float | None = None
        self._closed_unroutable = False
        self._unroutable_logged = False
        self._subscribed = asyncio.Event()
        self._first_subscription = True
        self.counters: Counter[str] = Counter()

    # --- lifecycle ------------------------------------------------------------

    async def start(self, within: float = 10.0) -> None:
        """Connect, subscribe, and wait until a probe has come back (routable)."""
        try:
            await self.redis.ping()
        except (RedisError, OSError) as err:
            await self._close_clients()
            raise StorageError(f"cannot reach Redis: {err}") from err
        loop = asyncio.get_running_loop()
        self._registry.cluster = self
        self._registry.account_bucket = self._account_bucket
        self._forwarding.remote = self.forward_remote
        self._subscription = loop.create_task(self._subscribe())
        for job in (self._publisher, self._control_worker, self._refresher, self._prober):
            self._tasks.append(loop.create_task(job()))
        deadline = self._clock() + within
        while not self.routable:
            if self._clock() > deadline:
                await self.stop()
                raise StorageError("Redis pub/sub does not deliver this node's probes")
            await asyncio.sleep(0.02)
        _LOG.info("cluster node up", extra={"node": self.node.decode()})

    async def stop(self) -> None:
        """Flush what is queued (the last presence removals), then close."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                while not self._control.empty() or self._outbox:  # noqa: ASYNC110 (two queues)
                    await asyncio.sleep(0.01)
        tasks = [*self._tasks, *self._jobs]
        if self._subscription is not None:
            tasks.append(self._subscription)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self._close_clients()

    async def _close_clients(self) -> None:
        for client in (self.redis, self._sub_redis):
            with contextlib.suppress(Exception):
                await client.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    # --- health ---------------------------------------------------------------

    @property
    def routable(self) -> bool:
        """Whether this node's inbox delivers: a probe came back recently."""
        s = self._settings
        return self._clock() - self._probe_seen < s.probe_interval_s + s.probe_timeout_s

    async def _prober(self) -> None:
        s = self._settings
        while True:
            now = self._clock()
            if self._subscribed.is_set():
                outstanding = self._probe_nonce and self._probe_seen < self._probe_sent
                if outstanding and now - self._probe_sent > s.probe_timeout_s:
                    self.counters["probes_lost"] += 1
                    _LOG.warning(
                        "probe of own inbox lost: rebuilding the subscription",
                        extra={"node": self.node.decode()},
                    )
                    self._rebuild()
                elif not outstanding and now - self._probe_sent >= s.probe_interval_s:
                    self._probe_nonce = secrets.token_bytes(8)
                    self._probe_sent = now
                    self._send(self.node, _record(PROBE, self._probe_nonce))
            self._watch_health(now)
            await asyncio.sleep(min(s.probe_interval_s, 0.25) / 5)

    def _watch_health(self, now: float) -> None:
        if self.routable:
            if self._unroutable_since is not None and self._unroutable_logged:
                _LOG.warning(
                    "cluster node can route again",
                    extra={"node": self.node.decode(), "after_s": now - self._unroutable_since},
                )
            self._unroutable_since = None
            self._unroutable_logged = False
            self._closed_unroutable = False
            return
        if self._unroutable_since is None:
            self._unroutable_since = now
            if self._probe_seen > 0:  # it could route before (not a node starting)
                self._unroutable_logged = True
                _LOG.error("cluster node cannot route", extra={"node": self.node.decode()})
        if (
            not self._closed_unroutable
            and now - self._unroutable_since >= self._settings.unroutable_grace_s
        ):
            self._closed_unroutable = True
            conns = self._registry.connections()
            _LOG.error(
                "closing this node's endpoints: it cannot route",
                extra={"node": self.node.decode(), "connections": len(conns)},
            )
            for conn in conns:
                self._registry.closer.close(conn, CloseCode.RESTARTING)

    # --- the subscription -----------------------------------------------------

    def _rebuild(self) -> None:
        self.counters["subscription_rebuilds"] += 1
        self._subscribed.clear()
        self._probe_nonce = b""
        if self._subscription is not None:
            self._subscription.cancel()
        self._subscription = asyncio.get_running_loop().create_task(self._subscribe())

    async def _subscribe(self) -> None:
        delay = 0.05
        while True:
            pubsub = self.pubsub = self._sub_redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._inbox, EVENTS)
                # Its confirmation: SUBSCRIBE has taken effect before the first probe.
                await pubsub.parse_response(block=True)
                await pubsub.parse_response(block=True)
                self._subscribed.set()
                self._probe_sent = 0.0  # probe at once
                if not self._first_subscription:
                    # Events may have been missed, and Redis may have restarted.
                    self._spawn(self._resync())
                    self._spawn(self._refresh_all())
                self._first_subscription = False
                delay = 0.05
                on_inbox, on_event, inbox = self._on_inbox, self._on_event, self._inbox
                while True:
                    message = await pubsub.parse_response(block=True)
                    if message is None or message[0] != b"message":
                        continue
                    if message[1] == inbox:
                        on_inbox(message[2])
                    else:
                        on_event(message[2])
            except (RedisError, OSError) as err:
                self._subscribed.clear()
                self._probe_nonce = b""
                self.counters["redis_errors"] += 1
                _LOG.warning(
                    "cluster subscription lost", extra={"node": self.node.decode(), "error": err}
                )
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)

    def _on_inbox(self, data: bytes) -> None:
        try:
            sender = data[1 : 1 + data[0]]
            pos, end = 1 + data[0], len(data)
            while pos < end:
                n = (data[pos] << 8) | data[pos + 1]
                rec = data[pos + 2 : pos + 2 + n]
                pos += 2 + n
                kind = rec[0]
                if kind == FWD:
                    self._deliver(sender, rec)
                elif kind == GONE:
                    self._gone(sender, rec[1:])
                elif kind == ERR:
                    self._error_for(rec[1], rec[2:12], rec[12:])
                elif kind == REPLACE:
                    self._replace(rec[1], rec[2:12], rec[12:])
                elif kind == PROBE and rec[1:] == self._probe_nonce:
                    self._probe_seen = self._clock()
        except Exception:  # a malformed message costs that message, never the node
            self.counters["bad_messages"] += 1
            _LOG.exception("malformed cluster message")

    # --- sending ----------------------------------------------------------------

    def _send(self, node: bytes, record: bytes) -> None:
        """Queue a record for `node`'s inbox (published with the others queued)."""
        size = self._outbox_bytes[node] + len(record)
        if size > self._settings.outbox_bytes:
            self.counters["outbox_full"] += 1
            self._stats.drop("cluster_queue_full")
            return
        self._outbox_bytes[node] = size
        queued = self._outbox.get(node)
        if queued is None:
            self._outbox[node] = [record]
        else:
            queued.append(record)
        self._wake.set()

    async def _publisher(self) -> None:
        publish = self.redis.publish
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                node, records = self._outbox.popitem()
                del self._outbox_bytes[node]
                payload = b"".join((self._batch_head, *records))
                try:
                    receivers = await publish(INBOX + node, payload)
                except (RedisError, OSError) as err:
                    self.counters["redis_errors"] += 1
                    self.counters["frames_lost"] += sum(1 for r in records if r[2] == FWD)
                    _LOG.debug("publish failed", extra={"error": str(err)})
                    continue
                self.counters["publishes"] += 1
                if receivers == 0 and node != self.node:
                    self._unreachable(node, records)

    def forward_remote(self, conn: DeviceConn | ControllerConn, data: bytes) -> None:
        """A SESSION or PAIR frame whose destination is not on this node (Forwarding's
        miss): to the node that holds it, with what that node checks (§3.2)."""
        if type(conn) is DeviceConn:
            owner = conn.owner
            account = _NO_ACCOUNT if owner is None else owner
            flags = APPROVED if data[0] == _PAIR and data[1:11] in conn.pairing_peers else 0
            head = _FWD_HEAD.pack(FWD, DEVICE, flags, account, conn.endpoint_id)
            dest_role = CONTROLLER
        else:
            assert isinstance(conn, ControllerConn)
            head = _FWD_HEAD.pack(FWD, CONTROLLER, 0, conn.account_id, conn.endpoint_id)
            dest_role = DEVICE
        self._route(bytes((dest_role,)) + data[1:11], _record_raw(head, data))

    def _route(self, dest: bytes, rec: bytes) -> None:
        """Send a FWD record (length-prefixed) to the node holding `dest` (role ‖ id)."""
        where = self._where.get(dest)
        if where is not None and where[1] > self._clock():
            self._send(_node_of(where[0]), rec)
            return
        pending = self._lookups.get(dest)
        if pending is not None:
            if len(pending) < self._settings.pending_per_lookup:
                pending.append(rec)
            else:
                self._answer(rec, RelayError.PEER_OFFLINE)
            return
        if len(self._lookups) >= self._settings.max_lookups:
            self._answer(rec, RelayError.PEER_OFFLINE)
            return
        self._lookups[dest] = [rec]
        self._spawn(self._lookup(dest))

    async def _lookup(self, dest: bytes) -> None:
        self.counters["lookups"] += 1
        value: bytes | None
        try:
            got = await self.redis.get(presence_key(dest[0], dest[1:]))
            value = got.encode() if isinstance(got, str) else got
        except (RedisError, OSError):
            self.counters["redis_errors"] += 1
            value = None
        records = self._lookups.pop(dest, [])
        if value is not None and _node_of(value) == self.node:
            # It names this node, but the registry has no such connection (or has just
            # got one): deliver here if it has, else the entry is stale.
            if self._local(dest) is None:
                self._spawn(self._release_value(dest, value))
                value = None
            else:
                for rec in records:
                    self._deliver(self.node, rec[2:])
                return
        if value is None:
            for rec in records:
                self._answer(rec, RelayError.PEER_OFFLINE)
            return
        if len(self._where) >= self._settings.location_cache:
            self._where.clear()
        self._where[dest] = (value, self._clock() + self._where_ttl)
        node = _node_of(value)
        for rec in records:
            self._send(node, rec)

    async def settle(self, within: float = 0.5) -> None:
        """Until the lookups in flight are answered (a connection about to be closed
        gets the ERROR answers to its frames first), or `within` seconds."""
        deadline = self._clock() + within
        while self._lookups and self._clock() < deadline:  # noqa: ASYNC110 (rare: a close)
            await asyncio.sleep(0.002)

    def _local(self, dest: bytes) -> DeviceConn | ControllerConn | None:
        if dest[0] == DEVICE:
            return self._registry.devices.get(dest[1:])
        return self._registry.controllers.get(dest[1:])

    def _answer(self, rec: bytes, error: RelayError) -> None:
        """ERROR for a FWD record (length-prefixed) to its source on this node."""
        _, role, _, _, src = _FWD_HEAD.unpack_from(rec, 2)
        registry = self._registry
        conn: DeviceConn | ControllerConn | None = (
            registry.devices.get(src) if role == DEVICE else registry.controllers.get(src)
        )
        if conn is not None:
            start = 2 + _FWD_HEAD.size + 1
            answer_error(self._stats, conn, rec[start : start + 10], error)

    def _unreachable(self, node: bytes, records: list[bytes]) -> None:
        """A publish to `node` reached no subscriber: that node is gone. Its entries are
        stale; the frames are looked up again once (the endpoint may have moved)."""
        self.counters["unreachable"] += 1
        stale = [(k, v) for k, (v, _) in self._where.items() if _node_of(v) == node]
        for key, _ in stale:
            del self._where[key]
        self._spawn(self._retry_after_stale(stale, records))

    async def _retry_after_stale(
        self, stale: list[tuple[bytes, bytes]], records: list[bytes]
    ) -> None:
        for key, value in stale:
            await self._release_value(key, value)
        for rec in records:
            if rec[2] != FWD:
                continue
            self._retry(rec[2:])

    def _retry(self, body: bytes) -> None:
        """Route a FWD record (unprefixed) again, or answer peer_offline if it was."""
        rec = _record_raw(b"", body)
        if body[2] & RETRIED:
            self._answer(rec, RelayError.PEER_OFFLINE)
            return
        body = body[:2] + bytes((body[2] | RETRIED,)) + body[3:]
        dest_role = CONTROLLER if body[1] == DEVICE else DEVICE
        frame = body[_FWD_HEAD.size :]
        self._route(bytes((dest_role,)) + frame[1:11], _record_raw(b"", body))

    # --- receiving --------------------------------------------------------------

    def _deliver(self, sender: bytes, rec: bytes) -> None:
        """A FWD record from `sender`: check the route (§3.2) and write the frame."""
        _, role, flags, account, src = _FWD_HEAD.unpack_from(rec)
        frame = rec[_FWD_HEAD.size :]
        frame_type, dest = frame[0], frame[1:11]
        registry = self._registry
        dst: DeviceConn | ControllerConn | None
        if role == DEVICE:
            dst = ctl = registry.controllers.get(dest)
            if ctl is None:
                allowed = False
            elif frame_type == _SESSION:
                allowed = ctl.account_id == account
            else:
                allowed = frame_type == _PAIR and bool(flags & APPROVED)
        else:
            dst = dev = registry.devices.get(dest)
            if dev is None:
                allowed = False
            elif frame_type == _SESSION:
                allowed = dev.owner == account
            elif frame_type == _PAIR:
                allowed = dev.owner == account or src in dev.pairing_peers
            elif frame_type == _PAIR_START:
                allowed = dev.owner is None or dev.owner == account
                if allowed:
                    registry.add_pairing_peer_id(dev, src, account)
            else:
                allowed = False
        if dst is None:
            self._say_gone(sender, rec)
        elif allowed:
            self.counters["frames_in"] += 1
            self._forwarding.deliver(dst, bytes((frame_type,)) + src, frame)
        else:
            self._stats.drop("not_permitted")
            error = encode_frame(FrameType.ERROR, dest, bytes((RelayError.NOT_PERMITTED,)))
            self._send(sender, _record(ERR, bytes((role,)) + src + error))

    def _say_gone(self, sender: bytes, rec: bytes) -> None:
        self.counters["gone_sent"] += 1
        if sender == self.node:
            self._retry(rec)
        else:
            self._send(sender, _record(GONE, rec))

    def _gone(self, sender: bytes, rec: bytes) -> None:
        """`sender` no longer holds the destination of our FWD record `rec`."""
        self.counters["gone_received"] += 1
        dest_role = CONTROLLER if rec[1] == DEVICE else DEVICE
        dest = bytes((dest_role,)) + rec[_FWD_HEAD.size + 1 : _FWD_HEAD.size + 11]
        where = self._where.get(dest)
        if where is not None and _node_of(where[0]) == sender:
            del self._where[dest]
        self._retry(rec)

    def _error_for(self, role: int, endpoint_id: bytes, frame: bytes) -> None:
        conn = (
            self._registry.devices.get(endpoint_id)
            if role == DEVICE
            else self._registry.controllers.get(endpoint_id)
        )
        if conn is not None:
            conn.send(frame)

    def _replace(self, role: int, endpoint_id: bytes, value: bytes) -> None:
        key = bytes((role,)) + endpoint_id
        mine = self._mine.get(key)
        if mine is not None and mine[1] == value:
            del self._mine[key]
            self.counters["replaced_elsewhere"] += 1
            self._registry.replaced_elsewhere(mine[0])

    # --- presence (ClusterHooks) -----------------------------------------------

    async def reserve(self, is_device: bool, endpoint_id: bytes) -> None:
        """Write the presence key of an endpoint about to be registered, before its
        AUTH_OK: whoever hears of it (the user pairing it, the controller it answers)
        finds it. `added` then takes the connection. Without Redis, `added` queues it."""
        key = bytes((DEVICE if is_device else CONTROLLER,)) + endpoint_id
        value = self._new_value()
        try:
            old = await self.redis.set(
                presence_key(key[0], key[1:]), value, px=self._ttl_ms, get=True
            )
        except (RedisError, OSError):
            self.counters["redis_errors"] += 1
            return
        self._reserved[key] = value
        self._replaced(key, value, old)

    def _new_value(self) -> bytes:
        return self.node + b"|" + str(next(self._seq)).encode()

    def _replaced(self, key: bytes, value: bytes, old: Any) -> None:
        """The presence key `key` held `old` before this node wrote `value`."""
        if isinstance(old, bytes) and old != value:
            old_node = _node_of(old)
            if old_node != self.node:
                # The older connection is on another node: it closes it (4002), and the
                # nodes that remember the old place forget it.
                self._send(old_node, _record(REPLACE, key + old))
                self._event({"k": "moved", "e": key.hex()})

    def added(self, conn: DeviceConn | ControllerConn) -> None:
        role = DEVICE if isinstance(conn, DeviceConn) else CONTROLLER
        key = bytes((role,)) + conn.endpoint_id
        self._where.pop(key, None)
        value = self._reserved.pop(key, None)
        if value is None:
            value = self._new_value()
            self._queue("claim", (key, value))
        self._mine[key] = (conn, value)
        if isinstance(conn, ControllerConn):
            self._spawn(self._announce_remote_devices(conn))

    def removed(self, conn: DeviceConn | ControllerConn) -> None:
        role = DEVICE if isinstance(conn, DeviceConn) else CONTROLLER
        key = bytes((role,)) + conn.endpoint_id
        mine = self._mine.get(key)
        if mine is not None and mine[0] is conn:
            del self._mine[key]
            self._queue("release", (key, mine[1]))

    def presence(self, account_id: int, device_id: bytes, online: bool) -> None:
        self._event({"k": "presence", "a": account_id, "d": device_id.hex(), "on": online})

    def _queue(self, op: str, args: Any) -> None:
        try:
            self._control.put_nowait((op, args))
        except asyncio.QueueFull:
            # The refresher writes missing keys, and stale ones answer GONE.
            self.counters["control_queue_full"] += 1

    async def _control_worker(self) -> None:
        """Presence writes and removals and events, in order, pipelined."""
        while True:
            ops = [await self._control.get()]
            while not self._control.empty() and len(ops) < 500:
                ops.append(self._control.get_nowait())
            try:
                await self._run_ops(ops)
            except (RedisError, OSError) as err:
                self.counters["redis_errors"] += 1
                _LOG.warning("presence update failed", extra={"error": str(err)})
                await asyncio.sleep(0.2)

    async def _run_ops(self, ops: list[tuple[str, Any]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            results = await self._pipelined(pipe, ops)
        for (op, args), result in zip(ops, results, strict=True):
            if op == "claim":
                self._replaced(args[0], args[1], result)

    async def _pipelined(self, pipe: Any, ops: list[tuple[str, Any]]) -> list[Any]:
        for op, args in ops:
            if op == "claim":
                key, value = args
                pipe.set(presence_key(key[0], key[1:]), value, px=self._ttl_ms, get=True)
            elif op == "release":
                key, value = args
                await self._release(keys=[presence_key(key[0], key[1:])], args=[value], client=pipe)
            else:
                pipe.publish(EVENTS, args)
        return list(await pipe.execute(raise_on_error=False))

    async def _release_value(self, key: bytes, value: bytes) -> None:
        try:
            await self._release(keys=[presence_key(key[0], key[1:])], args=[value])
        except (RedisError, OSError):
            self.counters["redis_errors"] += 1

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(self._settings.presence_ttl_s / 3)
            await self._refresh_all()

    async def _refresh_all(self) -> None:
        items = list(self._mine.items())
        for start in range(0, len(items), REFRESH_BATCH):
            batch = items[start : start + REFRESH_BATCH]
            try:
                lost = await self._refresh(
                    keys=[presence_key(k[0], k[1:]) for k, _ in batch],
                    args=[self._ttl_ms, *(value for _, (_, value) in batch)],
                )
            except (RedisError, OSError):
                self.counters["redis_errors"] += 1
                return
            for index in lost:
                key, (_, value) = batch[int(index) - 1]
                if self._mine.get(key, (None, b""))[1] == value:
                    # Another connection holds the key: a REPLACE that did not arrive.
                    self._replace(key[0], key[1:], value)

    async def online(self, device_ids: list[bytes]) -> set[bytes]:
        if not device_ids:
            return set()
        try:
            values = await self.redis.mget([presence_key(DEVICE, d) for d in device_ids])
        except (RedisError, OSError):
            self.counters["redis_errors"] += 1
            return set()
        return {d for d, v in zip(device_ids, values, strict=True) if v is not None}

    async def _announce_remote_devices(self, conn: ControllerConn) -> None:
        """PRESENCE online, to a controller that has just registered, for its account's
        devices connected to other nodes (the registry announced this node's)."""
        try:
            devices = await self._storage.list_devices(conn.account_id)
        except StorageError:
            return
        remote = [d.device_id for d in devices if not self._registry.is_online(d.device_id)]
        for device_id in await self.online(remote):
            conn.send(encode_frame(FrameType.PRESENCE, device_id, b"\x01"))

    # --- PAIR_START (awaited by the read loop) ---------------------------------

    async def pair_start(self, conn: DeviceConn | ControllerConn, data: bytes) -> Verdict:
        assert isinstance(conn, ControllerConn)
        dest = data[1:11]
        dst = self._registry.devices.get(dest)
        if dst is None:
            try:
                found = await self.redis.exists(presence_key(DEVICE, dest))
            except (RedisError, OSError):
                found = 0
            if not found:
                answer_error(self._stats, conn, dest, RelayError.PEER_OFFLINE)
                return Verdict.HANDLED
        elif dst.owner is not None and dst.owner != conn.account_id:
            answer_error(self._stats, conn, dest, RelayError.NOT_PERMITTED)
            return Verdict.HANDLED
        limits = self._limits
        try:
            refused, _ = await self.limiter.take_all(
                [
                    ("pair_start_per_account_device", limits.pair_start_per_account_device,
                     (conn.account_id, dest)),
                    ("pair_start_per_account", limits.pair_start_per_account, conn.account_id),
                ]
            )  # fmt: skip
        except SharedUnavailable:
            refused = 0  # fail closed
        if refused >= 0:
            answer_error(self._stats, conn, dest, RelayError.RATE_LIMITED)
            return Verdict.HANDLED
        dst = self._registry.devices.get(dest)
        if dst is not None:
            if dst.owner is None or dst.owner == conn.account_id:
                self._registry.add_pairing_peer(dst, conn)
                self._forwarding.deliver(dst, conn.tag_pair_start, data)
            else:
                answer_error(self._stats, conn, dest, RelayError.NOT_PERMITTED)
            return Verdict.HANDLED
        head = _FWD_HEAD.pack(FWD, CONTROLLER, 0, conn.account_id, conn.endpoint_id)
        self._route(bytes((DEVICE,)) + dest, _record_raw(head, data))
        return Verdict.HANDLED

    # --- the account frame budget, leased ------------------------------------

    def _account_bucket(self, account_id: int) -> Bucket:
        limit = self._limits.frames_per_account

        def request(bucket: LeasedBucket, tokens: int) -> None:
            self._spawn(self._lease(account_id, bucket, tokens))

        return LeasedBucket(limit, self._clock(), request)

    async def _lease(self, account_id: int, bucket: LeasedBucket, tokens: int) -> None:
        try:
            granted: int | None = await self.limiter.lease(
                "frames_per_account", self._limits.frames_per_account, account_id, tokens
            )
        except SharedUnavailable:
            self.counters["redis_errors"] += 1
            granted = None
        bucket.granted(granted, self._clock())

    # --- account events (AccountEvents) ----------------------------------------

    def tokens_revoked(self, token_hashes: list[str]) -> None:
        self._registry.tokens_revoked(token_hashes)
        self._event({"k": "revoked", "t": token_hashes})

    def account_deleted(self, account_id: int, devices: list[bytes]) -> None:
        self._registry.account_deleted(account_id, devices)
        self._event({"k": "deleted", "a": account_id, "d": [d.hex() for d in devices]})

    def device_removed(self, device_id: bytes, account_id: int) -> None:
        self._registry.device_removed(device_id, account_id)
        self._event({"k": "removed", "a": account_id, "d": device_id.hex()})

    def _event(self, event: dict[str, Any]) -> None:
        event["n"] = self.node.decode()
        self._queue("event", json.dumps(event).encode())

    def _on_event(self, data: bytes) -> None:
        try:
            event = json.loads(data)
            if event.get("n") == self.node.decode():
                return
            kind, registry = event["k"], self._registry
            self.counters["events_in"] += 1
            if kind == "moved":
                self._where.pop(bytes.fromhex(event["e"]), None)
            elif kind == "presence":
                registry.announce_remote(int(event["a"]), bytes.fromhex(event["d"]), event["on"])
            elif kind == "revoked":
                registry.tokens_revoked([str(t) for t in event["t"]])
            elif kind == "deleted":
                registry.account_deleted(int(event["a"]), [bytes.fromhex(d) for d in event["d"]])
            elif kind == "removed":
                registry.device_removed(bytes.fromhex(event["d"]), int(event["a"]))
        except (ValueError, KeyError, TypeError):
            self.counters["bad_messages"] += 1
            _LOG.warning("malformed cluster event")

    async def _resync(self) -> None:
        """After the subscription was rebuilt: what events may have been missed, from
        the database (revoked tokens, devices' owners)."""
        now = time.time()
        self.counters["resyncs"] += 1
        try:
            for conn in list(self._registry.controllers.values()):
                token = await self._storage.get_token(conn.token_hash)
                if token is None or token.revoked or token.expires_at <= now:
                    self._registry.closer.close(conn, CloseCode.UNAUTHORIZED)
            for dev in list(self._registry.devices.values()):
                device = await self._storage.register_device(dev.endpoint_id, b"", int(now))
                if device.owner_account_id != dev.owner:
                    _LOG.info(
                        "device owner changed while events were lost",
                        extra={"device_id": format_id(dev.endpoint_id)},
                    )
                    self._registry.set_owner(dev, device.owner_account_id)
        except StorageError:
            _LOG.warning("resync after a lost subscription failed (database)")

    # --- metrics --------------------------------------------------------------

    def gauges(self) -> Iterator[tuple[str, float]]:
        yield "routable", 1.0 if self.routable else 0.0
        yield "presence_keys", float(len(self._mine))
        yield "location_cache", float(len(self._where))
        yield "outbox_bytes", float(sum(self._outbox_bytes.values()))
        yield "lookups_waiting", float(len(self._lookups))


def _record_raw(head: bytes, data: bytes) -> bytes:
    """A length-prefixed record of `head` ‖ `data` (head starts with the kind)."""
    return (len(head) + len(data)).to_bytes(2, "big") + head + data
