"""What the engine records about a container: the user's request (docker's Config and
HostConfig in one record) and its state. Both are saved as JSON, atomically."""

from __future__ import annotations

from corral.structs import asdict, field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Status:
    """docker's container states."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    EXITED = "exited"
    REMOVING = "removing"
    DEAD = "dead"


@record
class ContainerSpec:
    """What `corral run/create` was asked for."""

    image: str  # as the user wrote it
    image_id: str = ""
    name: str = ""
    cmd: list[str] = field(default_factory=list)  # empty: the image's
    entrypoint: list[str] | None = None  # None: the image's
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    tty: bool = False
    stdin_open: bool = False
    stop_signal: str = ""
    stop_timeout: int | None = None
    healthcheck: dict[str, Any] | None = None  # test, interval, timeout, retries, start_period
    # -- host config
    mounts: list[dict[str, Any]] = field(default_factory=list)  # type, source, target, readonly
    read_only: bool = False
    resources: dict[str, Any] = field(default_factory=dict)  # Corral's resource model names
    devices: list[dict[str, Any]] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    seccomp: str = ""  # "" default profile, "unconfined", or a profile's path
    no_new_privileges: bool = False
    ulimits: list[dict[str, Any]] = field(default_factory=list)  # name, soft, hard
    init: bool = False
    restart: str = "no"  # no | on-failure | always | unless-stopped
    restart_max: int = 0  # on-failure:N
    log_opts: dict[str, str] = field(default_factory=dict)
    # docker's NetworkMode: bridge (the default network), a user network's name, none,
    # host, or container:NAME (that container's net namespace)
    network: str = "bridge"
    # the networks it is attached to (bridge-like modes): name, aliases, ip (--ip)
    networks: list[dict[str, Any]] = field(default_factory=list)
    ports: list[dict[str, Any]] = field(default_factory=list)  # -p, parsed (network.ports)
    publish_all: bool = False  # -P: every exposed port to a free host port
    expose: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)  # --add-host NAME:IP
    auto_remove: bool = False
    runtime: str = ""  # "" Corral's own (in process), else a runc-compatible binary
    created: str = ""
    # cgroup files written after the runtime's create, before start ("memory.max=64M";
    # either version's names, translated): LXC's lxc.cgroup.* / lxc.cgroup2.* keys
    cgroup_params: list[str] = field(default_factory=list)
    # "" an image's container (the bundle is built from the spec); else the front end that
    # writes the bundle's config.json itself ("lxc")
    kind: str = ""


@record
class ContainerState:
    status: str = Status.CREATED
    pid: int = 0
    pid_start: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    started_at: str = ""
    finished_at: str = ""
    restart_count: int = 0
    monitor_pid: int = 0
    monitor_start: int = 0
    stop_requested: bool = False  # `stop`/`kill` by a user: no restart (docker's rule)
    health: str = ""  # "", starting, healthy, unhealthy
    health_failing: int = 0
    health_log: list[dict[str, Any]] = field(default_factory=list)


def to_json(obj: object) -> dict[str, Any]:
    return asdict(obj)


def spec_from(data: dict[str, Any]) -> ContainerSpec:
    known = set(ContainerSpec.__record_fields__)  # type: ignore[attr-defined]
    return ContainerSpec(**{k: v for k, v in data.items() if k in known})


def state_from(data: dict[str, Any]) -> ContainerState:
    known = set(ContainerState.__record_fields__)  # type: ignore[attr-defined]
    return ContainerState(**{k: v for k, v in data.items() if k in known})
