"""A real Apache Kafka (KRaft) for development, tests and the demo: one node
(`LocalKafka`), or a cluster of several on this machine (`LocalCluster`).

The broker's jars come from Maven Central through the shipped
`pipeline/defaults/kafka/pom.xml`; data, logs and the pid file live under the
state directory. Every command is idempotent: `up` on a running broker returns
at once, `down` on a stopped one does nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.config.settings import SHIPPED_DIR, Settings, load_settings
from pipeline.errors import ConfigError, KafkaUnavailable

KAFKA_FILES = SHIPPED_DIR / "kafka"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0

Log = Callable[[str], None]


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    managed: bool  # started by us (pid file) rather than found listening


@dataclass(frozen=True)
class SaslSslListener:
    """A second listener of the local broker as a secured cluster has it (SASL_SSL):
    TLS with the PEM private key and certificate chain in `keystore`, users by
    SCRAM (`users`: name → password), written into the cluster's metadata by the
    broker's own storage tool when the storage is formatted. The broker's own
    traffic stays on its PLAINTEXT listener."""

    port: int
    keystore: Path
    users: dict[str, str]
    mechanism: str = "SCRAM-SHA-512"

    def properties(self) -> dict[str, str]:
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return {
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": self.mechanism,
            f"listener.name.sasl_ssl.{self.mechanism.lower()}.sasl.jaas.config": jaas,
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(self.keystore),
        }

    def scram_arguments(self) -> list[str]:
        return [
            arg
            for name, password in self.users.items()
            for arg in ("--add-scram", f"{self.mechanism}=[name={name},password={password}]")
        ]


@dataclass(frozen=True)
class ClusterMember:
    """A broker's place in a local cluster of several (`LocalCluster`): its node id,
    the controller quorum (every node is also a controller), the cluster's id, and
    the cluster's size, which every topic's replication factor follows; a write
    counts once two replicas have it, so the cluster survives the loss of one."""

    node_id: int
    voters: str
    cluster_id: str
    size: int

    def properties(self) -> dict[str, str]:
        replicas, in_sync = str(self.size), str(min(2, self.size))
        return {
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": in_sync,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": in_sync,
            "default.replication.factor": replicas,
            "min.insync.replicas": in_sync,
        }


class LocalKafka:
    def __init__(
        self,
        settings: Settings,
        secured: SaslSslListener | None = None,
        member: ClusterMember | None = None,
    ) -> None:
        self.secured = secured
        self.member = member
        self.home = settings.state_dir / "kafka"
        self.jars = self.home / "jars"
        self.data = self.home / "data"
        self.logs = self.home / "logs"
        self.properties = self.home / "server.properties"
        self.pid_file = self.home / "kafka.pid"
        self.tables = settings.state_dir / "worker"
        host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port)

    @classmethod
    def private(cls, state_dir: Path, secured: SaslSslListener | None = None) -> LocalKafka:
        """A broker of its own in `state_dir`, on free ports (the controller listens on
        the next one), for work that must not share the local broker: restarting it,
        benchmarks, a secured listener. It uses the local broker's jars, fetched there
        once."""
        (port,) = _free_port_pairs(1)
        broker = cls(
            load_settings(state_dir=state_dir, kafka_bootstrap=f"127.0.0.1:{port}"), secured
        )
        broker.share_jars()
        return broker

    def share_jars(self) -> None:
        """Use the local broker's jars (fetched there once) instead of fetching our own."""
        shared = LocalKafka(load_settings())
        shared._fetch_jars(print)  # a no-op when the jars are there
        if self.jars.is_symlink():
            return
        self.jars.parent.mkdir(parents=True, exist_ok=True)
        self.jars.symlink_to(shared.jars.resolve(), target_is_directory=True)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def status(self) -> BrokerStatus:
        pid = self._pid()
        listening = _accepts_connections(self.host, self.port)
        return BrokerStatus(listening, pid, self.bootstrap, managed=pid is not None)

    def up(self, log: Log = print) -> BrokerStatus:
        process = self.start(log)
        return self.status() if process is None else self.wait(process)

    def start(self, log: Log = print) -> subprocess.Popen[bytes] | None:
        """Start the broker's process and return it without waiting (None: it runs
        already); the nodes of a cluster start together, as none serves before a
        majority of the controllers is up."""
        if self.status().running:
            return None
        self._fetch_jars(log)
        self._write_properties()
        self._format_storage(log)
        log(f"starting Kafka on {self.bootstrap} (logs: {self.logs})")
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / "stdout.log", "ab") as out:
            process = subprocess.Popen(
                [*self._java(), "kafka.Kafka", str(self.properties)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_more_open_files,
            )
        self.pid_file.write_text(str(process.pid))
        return process

    def wait(self, process: subprocess.Popen[bytes]) -> BrokerStatus:
        """Until the started broker accepts connections."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise KafkaUnavailable(
                    f"Kafka exited at start (code {process.returncode}); see {self.logs}/server.log"
                )
            if _accepts_connections(self.host, self.port):
                return self.status()
            time.sleep(0.25)
        raise KafkaUnavailable(f"Kafka did not accept connections within {START_TIMEOUT_S:.0f} s")

    def down(self, purge: bool = False) -> bool:
        """Stop the broker we started; True if one was running."""
        pid = self._pid()
        stopped = False
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            else:
                stopped = True
                deadline = time.monotonic() + STOP_TIMEOUT_S
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
            self.pid_file.unlink(missing_ok=True)
        if purge:
            shutil.rmtree(self.data, ignore_errors=True)
            shutil.rmtree(self.logs, ignore_errors=True)
            # the worker's local table state mirrors changelogs that are gone now:
            # Faust would refuse to start on it (ConsistencyError)
            shutil.rmtree(self.tables, ignore_errors=True)
        return stopped

    def kill(self) -> None:
        """Crash the broker (SIGKILL): no clean shutdown, as a power cut would."""
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
            self.pid_file.unlink(missing_ok=True)

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _java(self) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.logs}",
            f"-Dlog4j2.configurationFile={KAFKA_FILES / 'log4j2.xml'}",
            "-cp",
            f"{self.jars}/*",
        ]

    def _fetch_jars(self, log: Log) -> None:
        pom = KAFKA_FILES / "pom.xml"
        stamp = self.jars / ".pom-sha256"
        digest = hashlib.sha256(pom.read_bytes()).hexdigest()
        if stamp.exists() and stamp.read_text() == digest:
            return
        if shutil.which("mvn") is None or shutil.which("java") is None:
            raise KafkaUnavailable(
                "Java 17+ and Maven are needed to fetch and run the local broker."
            )
        log("fetching the Kafka broker from Maven Central (once)")
        shutil.rmtree(self.jars, ignore_errors=True)
        self.jars.mkdir(parents=True)
        result = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={self.jars}",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise KafkaUnavailable(f"mvn could not fetch the broker jars:\n{result.stdout[-2000:]}")
        stamp.write_text(digest)

    def _write_properties(self) -> None:
        broker, controller = f"{self.host}:{self.port}", f"{self.host}:{self.port + 1}"
        overrides = {
            "log.dirs": str(self.data),
            "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{broker}",
            "controller.quorum.voters": f"1@{controller}",
        }
        if self.member is not None:
            overrides |= self.member.properties()
        if self.secured is not None:
            secured = f"SASL_SSL://{self.host}:{self.secured.port}"
            overrides["listeners"] += f",{secured}"
            overrides["advertised.listeners"] += f",{secured}"
            overrides["listener.security.protocol.map"] = (
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL"
            )
            overrides |= self.secured.properties()
        lines = []
        for line in (KAFKA_FILES / "server.properties").read_text().splitlines():
            key = line.split("=", 1)[0].strip()
            if key not in overrides:
                lines.append(line)
        lines += [f"{k}={v}" for k, v in overrides.items()]
        self.home.mkdir(parents=True, exist_ok=True)
        self.properties.write_text("\n".join(lines) + "\n")

    def _format_storage(self, log: Log) -> None:
        if (self.data / "meta.properties").exists():
            return
        log(f"formatting new broker storage in {self.data}")
        cluster_id = self.member.cluster_id if self.member else new_cluster_id()
        result = subprocess.run(
            [
                *self._java(),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.properties),
                *(self.secured.scram_arguments() if self.secured else []),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise KafkaUnavailable(
                f"formatting broker storage failed:\n{result.stdout}{result.stderr}"
            )


class LocalCluster:
    """Several local brokers in one KRaft cluster, each also a controller, in
    `state_dir/node-N`: replication factor the cluster's size for the internal
    topics and by default, `min.insync.replicas` 2, so the cluster goes on when one
    broker dies. The nodes use the local broker's jars.

    Its layout (cluster id, each node's port; the controller listens on the next)
    is kept in `state_dir/cluster.json`, so `leadflow kafka up --brokers 3` run
    again starts the same cluster on the same ports. `first_port` puts the nodes on
    `first_port`, `first_port + 2`, …; without it (fault tests) on free ports."""

    def __init__(self, state_dir: Path, size: int = 3, first_port: int | None = None) -> None:
        self.state_dir = state_dir
        self.layout = state_dir / "cluster.json"
        cluster_id, ports = self._layout(size, first_port)
        voters = ",".join(f"{n}@127.0.0.1:{port + 1}" for n, port in enumerate(ports, 1))
        self.nodes = [
            LocalKafka(
                load_settings(
                    state_dir=state_dir / f"node-{n}", kafka_bootstrap=f"127.0.0.1:{port}"
                ),
                member=ClusterMember(n, voters, cluster_id, size),
            )
            for n, port in enumerate(ports, 1)
        ]
        for node in self.nodes:
            node.share_jars()

    @classmethod
    def existing(cls, state_dir: Path) -> LocalCluster | None:
        """The cluster laid out in `state_dir`, if one is."""
        try:
            size = len(json.loads((state_dir / "cluster.json").read_text())["ports"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return cls(state_dir, size)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> LocalKafka:
        return self.nodes[node_id - 1]

    def status(self) -> list[BrokerStatus]:
        return [node.status() for node in self.nodes]

    def up(self, log: Log = print) -> None:
        started = [(node, node.start(log)) for node in self.nodes]
        for node, process in started:
            if process is not None:
                node.wait(process)

    def down(self, purge: bool = False) -> bool:
        """Stop every node; True if one was running. `purge` also deletes the nodes'
        data and the layout, so the next `up` makes a new cluster."""
        stopped = [node.down(purge) for node in self.nodes]
        if purge:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return any(stopped)

    def _layout(self, size: int, first_port: int | None) -> tuple[str, list[int]]:
        if self.layout.exists():
            kept = json.loads(self.layout.read_text())
            if len(kept["ports"]) != size:
                raise ConfigError(
                    f"{self.layout}: a local cluster of {len(kept['ports'])} brokers exists "
                    f"here, not {size}; stop and delete it first (leadflow kafka down --purge)"
                )
            return str(kept["cluster_id"]), [int(p) for p in kept["ports"]]
        if first_port is None:
            ports = _free_port_pairs(size)
        else:
            ports = [first_port + 2 * n for n in range(size)]
            taken = [p for port in ports for p in (port, port + 1) if not port_is_free(p)]
            if taken:
                raise KafkaUnavailable(
                    f"a local cluster needs ports {first_port}-{first_port + 2 * size - 1}; "
                    f"{', '.join(map(str, taken))} taken (the single local broker? "
                    "leadflow kafka down)"
                )
        cluster_id = new_cluster_id()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.layout.write_text(json.dumps({"cluster_id": cluster_id, "ports": ports}))
        return cluster_id, ports


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID, base64url without padding, as Kafka's
    storage tool makes one, and like Kafka's `Uuid.randomUuid` never one that starts
    with "-": the storage tool would read it as an option (one id in 64 did)."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


def _free_port_pairs(count: int) -> list[int]:
    """`count` free ports whose next port is free too (a broker's and its controller's)."""
    ports: list[int] = []
    while len(ports) < count:
        port = _free_port()
        taken = {p + d for p in ports for d in (-1, 0, 1)}
        if port < 65535 and port not in taken and port_is_free(port + 1):
            ports.append(port)
    return ports


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (started by this process, exited, not reaped) is not alive.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _more_open_files() -> None:
    """In the broker's process before it starts: its open-file limit up to the hard
    limit. It holds a few files per partition segment, and a test run or a busy
    tenant has thousands of partitions; at the limit the broker shuts down ("Too
    many open files": its log directory has failed)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Nothing is bound to `port` on the loopback address."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
