"""A real Home Assistant: `hass -c <config_dir>` with the integration linked into its
custom_components, onboarded and driven only through its public REST and websocket
APIs, as the web UI and a user would.

Synchronous (`httpx`, one short-lived websocket per call in a private event loop), so
the demo and module-scoped pytest fixtures can share it without a loop of their own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from .paths import HA_NEWEST_SITE, ROOT, VENV_BIN
from .process import ChildProcess, ProcessFailed, TestbedError, run_sync, wait_until

DOMAIN = "homeseal"
# What waits on Home Assistant's API retry: it is starting, restarting, not there yet.
TRANSIENT = (httpx.HTTPError, OSError, TestbedError)


class FlowError(TestbedError):
    """A config flow ended somewhere other than where the caller expected."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(f"{message}: {json.dumps(result)[:1500]}")
        self.result = result


class ServiceError(TestbedError):
    """A service call answered with an error: an HTTP status, or the websocket's error
    object (code, message, translation_key)."""

    def __init__(self, status: int, text: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(f"service call failed ({status}): {text[:500]}")
        self.status = status
        self.text = text
        self.error = error or {}


BASE_INTEGRATIONS = ["http", "api", "config", "onboarding", "auth", "websocket_api", "automation"]


def configured_integrations(*, frontend: bool) -> list[str]:
    """What configuration.yaml names (tools/ha_requirements.py derives the packages)."""
    return [*BASE_INTEGRATIONS, *(["frontend"] if frontend else [])]


class HomeAssistant(ChildProcess):
    """A real `hass -c <config_dir>`, used only through its REST and websocket APIs."""

    name = "Home Assistant"

    def __init__(
        self,
        config_dir: Path,
        port: int,
        *,
        frontend: bool = False,
        newest: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(config_dir / "hass.out")
        self.env = dict(env or {})  # on top of ours (scripts/ha-newest keeps HOMESEAL_*)
        self.config_dir = config_dir
        self.port = port
        self.frontend = frontend
        # The newest Home Assistant runs in the Python 3.14 tree (scripts/ha-newest): the
        # config directory must then be under /tmp or the checkout, which the tree sees.
        self.newest = newest
        self.token: str | None = None
        self._http = httpx.Client(timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- configuration and process

    def write_config(self) -> None:
        """configuration.yaml naming only what is needed (default_config pulls in
        integrations that need network or libraries this machine lacks)."""
        d = self.config_dir
        d.mkdir(parents=True, exist_ok=True)
        integrations = configured_integrations(frontend=self.frontend)
        lines = [
            "homeassistant:",
            "  name: HomeSeal demo",
            "  unit_system: metric",
            "  time_zone: UTC",
            "  latitude: 52.37",
            "  longitude: 4.89",
            "  elevation: 0",
            "  currency: EUR",
            "  country: NL",
            "  language: en",
            *self._http_yaml(),
            *(f"{i}:" for i in integrations if i not in ("http", "automation")),
            "automation: !include automations.yaml",
            "logger:",
            "  default: warning",
            "  logs:",
            f"    custom_components.homeseal: {os.environ.get('HOMESEAL_HA_LOG_LEVEL', 'info')}",
            "",
        ]
        (d / "configuration.yaml").write_text("\n".join(lines))
        automations = d / "automations.yaml"
        if not automations.exists():
            automations.write_text("[]\n")
        # The integration as a user installs it by hand: custom_components/homeseal,
        # from the checkout that runs this (a state directory made by another checkout
        # must not keep running that one's code).
        cc = d / "custom_components"
        cc.mkdir(exist_ok=True)
        link = cc / DOMAIN
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(ROOT / "custom_components" / DOMAIN, target_is_directory=True)
        # Onboarding's core-config step sets up met, radio_browser and google_translate,
        # which need the internet (errors in the log, and a text-to-speech stack this
        # machine lacks). Before the first start, record those steps as done, as a
        # provisioned installation would: only the owner is created through the
        # onboarding API, and the UI then opens on the dashboard.
        storage = d / ".storage"
        storage.mkdir(exist_ok=True)
        onboarding = storage / "onboarding"
        if not onboarding.exists():
            onboarding.write_text(
                json.dumps(
                    {
                        "version": 4,
                        "minor_version": 1,
                        "key": "onboarding",
                        "data": {"done": ["core_config", "analytics", "integration"]},
                    }
                )
            )

        if self._http_in_storage():
            self._write_http_storage(storage / "http")

    def _http_in_storage(self) -> bool:
        """Whether this Home Assistant keeps its HTTP server settings in .storage/http
        (the newer ones: they migrate YAML once, as an unconfirmed trial that the UI
        asks to confirm and that reverts, with a restart, after five minutes)."""
        if self.newest:
            package = HA_NEWEST_SITE / "homeassistant"
        else:
            spec = importlib.util.find_spec("homeassistant")
            if spec is None or spec.origin is None:
                raise TestbedError("Home Assistant is not installed in this venv")
            package = Path(spec.origin).parent
        config = package / "components" / "http" / "config.py"
        return config.exists() and "yaml_migration_done" in config.read_text()

    def _http_yaml(self) -> list[str]:
        if self._http_in_storage():
            return []
        return ["http:", "  server_host: 127.0.0.1", f"  server_port: {self.port}"]

    def _write_http_storage(self, path: Path) -> None:
        """The HTTP settings as confirmed ones, as the UI leaves them after a change
        (the port is new on every start)."""
        settings = {
            "server_host": ["127.0.0.1"],
            "server_port": self.port,
            "cors_allowed_origins": ["https://cast.home-assistant.io"],
            "login_attempts_threshold": -1,
            "ip_ban_enabled": True,
            "ssl_profile": "modern",
            "use_x_frame_options": True,
            "created_at": "2026-01-01T00:00:00+00:00",
            "error": None,
            "error_message": None,
        }
        data = {"stable": settings, "pending": None, "yaml_migration_done": True}
        path.write_text(json.dumps({"version": 2, "minor_version": 2, "key": "http", "data": data}))
        path.chmod(0o600)

    def start(self, timeout: float = 240) -> None:
        """Start hass and wait until its HTTP API answers and it is running."""
        prefix = (
            [str(ROOT / "scripts" / "ha-newest"), "hass"]
            if self.newest
            else [str(VENV_BIN / "hass")]
        )
        self.spawn(
            [*prefix, "-c", str(self.config_dir), "--skip-pip", "--log-no-color"],
            cwd=self.config_dir,
            env={**os.environ, **self.env},
        )
        self.wait_running(timeout)

    def wait_running(self, timeout: float = 240) -> None:
        """Wait for the HTTP API, then (with a token) for the core to be RUNNING.

        Without a token only the onboarding API can tell that HA is up; once
        onboarding is complete HA no longer serves it (404)."""
        if self.token is None:

            def up() -> bool:
                self.check_alive()
                r = self._http.get(f"{self.url}/api/onboarding", timeout=5)
                return bool(r.status_code == 200)

            what = f"Home Assistant's onboarding API on {self.url}"
            wait_until(up, timeout, what, interval=0.5, transient=TRANSIENT)
            return

        def running() -> bool:
            self.check_alive()
            return bool(self.rest("GET", "/api/config").get("state") == "RUNNING")

        what = f"Home Assistant on {self.url} to be running"
        wait_until(running, timeout, what, interval=0.5, transient=TRANSIENT)

    def check_alive(self) -> None:
        super().check_alive()
        # Recovery mode keeps hass up but never loads our integrations: fail now,
        # not when a start timeout of minutes runs out.
        if "Activating recovery mode" in self.output():
            raise ProcessFailed(
                f"{self.name} fell into recovery mode (is home-assistant-frontend "
                f"installed?); see {self.config_dir / 'home-assistant.log'}:\n"
                f"{self.output()[-3000:]}"
            )

    def stop(self, timeout: float = 60) -> int | None:
        return super().stop(timeout)

    # -- onboarding (HA's own API, as the frontend's onboarding pages use it)

    def onboard(self, username: str, password: str) -> str:
        """Create the owner account (the only onboarding step left, see write_config);
        returns a long-lived access token."""
        client_id = f"{self.url}/"
        r = self._http.post(
            f"{self.url}/api/onboarding/users",
            json={
                "client_id": client_id,
                "name": "Demo Owner",
                "username": username,
                "password": password,
                "language": "en",
            },
            timeout=60,
        )
        if r.status_code != 200:
            raise TestbedError(f"onboarding user step: HTTP {r.status_code} {r.text[:300]}")
        tokens = self._token_exchange(client_id, r.json()["auth_code"])
        self.token = tokens["access_token"]
        self.wait_running()
        result = self.ws(
            {
                "type": "auth/long_lived_access_token",
                "client_name": "homeseal-e2e",
                "lifespan": 3650,
            }
        )
        self.token = str(result)
        return self.token

    def _token_exchange(self, client_id: str, code: str) -> dict[str, Any]:
        r = self._http.post(
            f"{self.url}/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": client_id},
            timeout=30,
        )
        if r.status_code != 200:
            raise TestbedError(f"token exchange: HTTP {r.status_code} {r.text[:300]}")
        return r.json()  # type: ignore[no-any-return]

    def login(self, username: str, password: str) -> int:
        """HA's login flow with a username and password (what the login page does);
        returns the HTTP status of the credentials step's token exchange."""
        client_id = f"{self.url}/"
        r = self._http.post(
            f"{self.url}/auth/login_flow",
            json={
                "client_id": client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": f"{self.url}/?auth_callback=1",
            },
            timeout=30,
        )
        r.raise_for_status()
        flow = r.json()
        r = self._http.post(
            f"{self.url}/auth/login_flow/{flow['flow_id']}",
            json={"client_id": client_id, "username": username, "password": password},
            timeout=30,
        )
        r.raise_for_status()
        result = r.json()
        if result.get("type") != "create_entry":
            return 401
        self._token_exchange(client_id, result["result"])
        return 200

    # -- REST and websocket

    def rest(
        self, method: str, path: str, body: Any = None, *, expect: tuple[int, ...] = (200, 201)
    ) -> Any:
        r = self._http.request(
            method,
            f"{self.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        if r.status_code not in expect:
            raise TestbedError(f"{method} {path}: HTTP {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def ws(self, *commands: dict[str, Any]) -> Any:
        """Send websocket commands in order; returns the last one's result."""
        return run_sync(self._ws(list(commands)))

    async def _ws(self, commands: list[dict[str, Any]]) -> Any:
        result: Any = None
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"{self.url}/api/websocket", timeout=aiohttp.ClientWSTimeout(30)
            ) as ws,
        ):
            await ws.receive_json(timeout=30)  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.token})
            msg = await ws.receive_json(timeout=30)
            if msg.get("type") != "auth_ok":
                raise TestbedError(f"websocket auth failed: {msg}")
            for i, command in enumerate(commands, start=1):
                await ws.send_json({"id": i, **command})
                while True:
                    msg = await ws.receive_json(timeout=60)
                    if msg.get("id") == i and msg.get("type") == "result":
                        break
                if not msg.get("success"):
                    error = msg.get("error") or {}
                    if command["type"] == "call_service":
                        raise ServiceError(0, str(error.get("message")), error)
                    raise TestbedError(f"websocket {command['type']}: {error}")
                result = msg.get("result")
        return result

    # -- states and services

    def states(self) -> list[dict[str, Any]]:
        return self.rest("GET", "/api/states")  # type: ignore[no-any-return]

    def state(self, entity_id: str) -> dict[str, Any] | None:
        r = self._http.get(
            f"{self.url}/api/states/{entity_id}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def wait_state(
        self,
        entity_id: str,
        predicate: Callable[[dict[str, Any]], bool] | str,
        timeout: float = 30,
    ) -> dict[str, Any]:
        """Wait until the entity's state object satisfies `predicate` (or equals a state)."""
        check = (lambda s: s["state"] == predicate) if isinstance(predicate, str) else predicate
        seen: list[Any] = []

        def ok() -> dict[str, Any] | None:
            s = self.state(entity_id)
            seen[:] = [None if s is None else (s["state"], s.get("attributes"))]
            return s if s is not None and check(s) else None

        try:
            return wait_until(ok, timeout, entity_id, interval=0.25, transient=TRANSIENT)
        except TestbedError as err:
            raise TestbedError(f"{err}; last seen: {seen}") from None

    def call(self, domain: str, service: str, data: dict[str, Any]) -> Any:
        r = self._http.post(
            f"{self.url}/api/services/{domain}/{service}",
            json=data,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        if r.status_code != 200:
            raise ServiceError(r.status_code, r.text)
        return r.json()

    def call_ws(self, domain: str, service: str, data: dict[str, Any]) -> Any:
        """A service call over the websocket API, as the web UI makes it: failures come
        back as ServiceError with HA's error object (translated message, key)."""
        return self.ws(
            {
                "type": "call_service",
                "domain": domain,
                "service": service,
                "service_data": data,
                "return_response": False,
            }
        )

    # -- config entries and flows

    def entries(self, domain: str = DOMAIN) -> list[dict[str, Any]]:
        return self.rest("GET", f"/api/config/config_entries/entry?domain={domain}")  # type: ignore[no-any-return]

    def entry(self, entry_id: str) -> dict[str, Any]:
        for e in self.entries():
            if e["entry_id"] == entry_id:
                return e
        raise TestbedError(f"no config entry {entry_id}")

    def wait_entry_state(self, entry_id: str, state: str = "loaded", timeout: float = 60) -> None:
        wait_until(
            lambda: self.entry(entry_id)["state"] == state,
            timeout,
            f"config entry {entry_id} to be {state}",
            interval=0.2,
            transient=TRANSIENT,
        )

    def reload_entry(self, entry_id: str) -> None:
        self.rest("POST", f"/api/config/config_entries/entry/{entry_id}/reload")

    def subentries(self, entry_id: str) -> list[dict[str, Any]]:
        return self.ws({"type": "config_entries/subentries/list", "entry_id": entry_id})  # type: ignore[no-any-return]

    def add_account(
        self,
        relay_url: str,
        username: str,
        password: str,
        *,
        ca_pem: str | None = None,
        create: bool = True,
    ) -> dict[str, Any]:
        """The integration's flow as the "Add integration" dialog drives it: the menu
        choice, then the account form. Returns the final flow result (type
        create_entry on success)."""
        base = "/api/config/config_entries/flow"
        flow = self.rest("POST", base, {"handler": DOMAIN, "show_advanced_options": False})
        if flow.get("type") != "menu" or flow.get("step_id") != "user":
            raise FlowError("the HomeSeal flow did not open on its menu", flow)
        step = "create_account" if create else "sign_in"
        flow = self.rest("POST", f"{base}/{flow['flow_id']}", {"next_step_id": step})
        user_input: dict[str, Any] = {
            "url": relay_url,
            "username": username,
            "password": password,
            "tls": {"ca_pem": ca_pem} if ca_pem else {},
        }
        if create:
            user_input["password_confirm"] = password
        return self.rest("POST", f"{base}/{flow['flow_id']}", user_input)  # type: ignore[no-any-return]

    def pair_device(
        self, entry_id: str, user_input: dict[str, Any], timeout: float = 90
    ) -> dict[str, Any]:
        """The "Add device" subentry flow; returns the flow's last result.

        Pairing runs as a progress step: poll the flow until it leaves it. The
        flow manager advances by itself when the pairing task ends, so a
        finished flow answers 404 and its result is the new subentry.
        """
        base = "/api/config/config_entries/subentries/flow"
        flow = self.rest("POST", base, {"handler": [entry_id, "device"]})
        if flow.get("type") != "menu":
            raise FlowError("the Add-device flow did not open with its menu", flow)
        choice = "qr_payload" if "setup_payload" in user_input else "manual"
        flow = self.rest("POST", f"{base}/{flow['flow_id']}", {"next_step_id": choice})
        before = {s["subentry_id"] for s in self.subentries(entry_id)}
        result = self.rest("POST", f"{base}/{flow['flow_id']}", user_input)
        deadline = time.monotonic() + timeout
        while result.get("type") in ("progress", "progress_done"):
            if time.monotonic() > deadline:
                raise FlowError("pairing did not finish in time", result)
            time.sleep(0.5)
            r = self._http.get(
                f"{self.url}{base}/{flow['flow_id']}",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=30,
            )
            if r.status_code == 404:
                new = [s for s in self.subentries(entry_id) if s["subentry_id"] not in before]
                if not new:
                    raise FlowError("the pairing flow vanished without a new device", result)
                return {"type": "create_entry", "subentry": new[0]}
            r.raise_for_status()
            result = r.json()
        return result  # type: ignore[no-any-return]

    def entity_ids(self, device_id: str) -> dict[str, str]:
        """entity key on the device → entity_id, from the entity registry."""
        entries = self.ws({"type": "config/entity_registry/list"})
        prefix = f"{device_id}_"
        return {
            e["unique_id"][len(prefix) :]: e["entity_id"]
            for e in entries
            if e["platform"] == DOMAIN and e["unique_id"].startswith(prefix)
        }

    def create_automation(self, automation_id: str, config: dict[str, Any]) -> None:
        self.rest("POST", f"/api/config/automation/config/{automation_id}", config)
