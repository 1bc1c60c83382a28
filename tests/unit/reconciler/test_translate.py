"""Stack + images → desired state: Docker's merge of image defaults, files, volumes, hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackd.errors import SpecError
from stackd.images.models import Healthcheck, Image, ImageConfig
from stackd.reconciler.desired import DesiredState
from stackd.reconciler.translate import TranslateInputs, desired_state
from stackd.runtime.containerspec import Mount
from stackd.spec import load_text

BUSYBOX = Image(
    id="sha256:" + "1" * 64, digest="sha256:" + "a" * 64, references=("busybox:latest",),
    config=ImageConfig(env=("PATH=/usr/bin:/bin", "LANG=C"), cmd=("sh",),
                       working_dir="/srv", user="nobody", volumes=("/cache",),
                       stop_signal="SIGQUIT",
                       healthcheck=Healthcheck(test=("CMD", "true"), interval=7.0)),
    layer_dirs=("/layers/top", "/layers/base"),
)


def build(text: str, tmp_path: Path, *, image: Image = BUSYBOX, environ: dict[str, str] | None
          = None, scale: dict[str, int] | None = None,
          slots: dict[str, frozenset[int]] | None = None) -> DesiredState:
    stack = load_text(text, project_name="demo", environ={}, project_directory=tmp_path)
    inputs = TranslateInputs(volume_path=lambda n: f"/state/volumes/{n}/data",
                         file_path=lambda d: f"/state/files/{d}",
                         read_file=lambda p: Path(p).read_bytes(),
                         environ=environ or {}, scale=scale or {}, slots=slots)
    return desired_state(stack, {name: image for name in stack.services}, inputs)


def test_image_defaults_are_merged_as_docker_does(tmp_path: Path) -> None:
    d = build("""
services:
  web:
    image: busybox
    environment: {LANG: en_US.UTF-8, LOG_LEVEL: info}
  job:
    image: busybox
    entrypoint: [/bin/echo]
    working_dir: /work
    user: "1000"
""", tmp_path)
    web, job = {c.service: c for c in d.containers}["web"], {c.service: c for c in
                                                              d.containers}["job"]
    assert web.spec.process.args == ("sh",)
    assert web.spec.process.env == ("PATH=/usr/bin:/bin", "LANG=en_US.UTF-8", "LOG_LEVEL=info")
    assert (web.spec.process.cwd, web.spec.process.user) == ("/srv", "nobody")
    assert web.spec.stop_signal == "SIGQUIT"
    assert web.spec.layers == ("/layers/top", "/layers/base")
    # an entrypoint set by the service discards the image's CMD
    assert job.spec.process.args == ("/bin/echo",)
    assert (job.spec.process.cwd, job.spec.process.user) == ("/work", "1000")
    assert d.services["web"].healthcheck is not None
    assert d.services["web"].healthcheck.interval == 7.0  # the image's HEALTHCHECK


def test_slots_are_named_labelled_and_attached(tmp_path: Path) -> None:
    d = build("""
services:
  web:
    image: busybox
    scale: 2
    ports: ["8080-8081:80-81"]
    networks:
      front: {aliases: [www]}
networks:
  front: {}
""", tmp_path)
    assert [c.name for c in d.containers] == ["demo-web-1", "demo-web-2"]
    c = d.containers[1]
    assert c.id == f"demo-web-2-{c.config_hash.digest[:8]}"
    assert {k: v for k, v in c.spec.labels.items() if k != "io.stackd.config-fields"} == {
        "io.stackd.project": "demo", "io.stackd.service": "web", "io.stackd.index": "2",
        "io.stackd.config-hash": c.config_hash.digest,
        "io.stackd.image": "busybox",  # as the stack names it: ps's IMAGE
        # the image's VOLUME, this slot's: set apart when a `down` removes the container
        "io.stackd.anonymous-volumes": ",".join(c.anonymous)}
    assert c.anonymous and all(v.startswith("demo_web-2_") for v in c.anonymous)
    assert [(a.network_key, a.aliases) for a in c.attachments] == [("demo_front", ("web",
                                                                                    "www"))]
    assert [str(p) for p in c.ports] == ["8080->80/tcp", "8081->81/tcp"]
    assert list(d.networks) == ["demo_front"]
    assert d.containers[0].config_hash == d.containers[1].config_hash


def test_a_cluster_node_translates_only_the_slots_it_holds(tmp_path: Path) -> None:
    text = """
services:
  web: {image: busybox, scale: 4, networks: [front]}
  db: {image: busybox}
networks:
  front: {}
"""
    everything = build(text, tmp_path)
    mine = build(text, tmp_path, slots={"web": frozenset({2, 4})})
    assert [c.name for c in mine.containers] == ["demo-web-2", "demo-web-4"]
    # The same containers as on one host (same ids, same config), only fewer; the
    # service keeps its whole scale (diff names the cluster-wide one).
    assert {c.id for c in mine.containers} < {c.id for c in everything.containers}
    assert mine.services == everything.services
    assert build(text, tmp_path, slots={}).containers == ()
    assert not build(text, tmp_path, slots={}).networks  # none of its slots uses one


def test_configs_and_secrets_from_content_environment_and_file(tmp_path: Path) -> None:
    (tmp_path / "app.conf").write_text("port=80\n")
    d = build("""
services:
  web:
    image: busybox
    configs: [inline, {source: fromfile, target: /etc/app.conf}]
    secrets: [token, {source: key, uid: "1000", gid: "1000", mode: 256}]  # 0o400
configs:
  inline: {content: "hello"}
  fromfile: {file: ./app.conf}
secrets:
  token: {environment: TOKEN}
  key: {content: "k3y"}
""", tmp_path, environ={"TOKEN": "s3cret"})
    (c,) = d.containers
    assert c.spec.files == {"/inline": "hello", "/etc/app.conf": "port=80\n",
                            "/run/secrets/token": "s3cret"}
    (f,) = c.host_files
    assert (f.content, f.uid, f.gid, f.mode) == (b"k3y", 1000, 1000, 0o400)
    assert Mount(type="bind", source=f.path, target="/run/secrets/key", readonly=True) \
        in c.spec.mounts


def test_a_missing_environment_source_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="environment variable TOKEN is not set"):
        build("""
services: {web: {image: busybox, secrets: [token]}}
secrets: {token: {environment: TOKEN}}
""", tmp_path)


def test_named_volumes_live_under_the_state_root_and_image_volumes_get_one_per_slot(
        tmp_path: Path) -> None:
    d = build("""
services:
  db:
    image: busybox
    scale: 2
    volumes: ["data:/var/lib/db", "/host/conf:/conf:ro"]
volumes:
  data: {}
""", tmp_path)
    c1 = d.containers[0]
    by_target = {m.target: m for m in c1.spec.mounts}
    assert by_target["/var/lib/db"] == Mount(type="volume", target="/var/lib/db",
                                             source="/state/volumes/demo_data/data")
    assert by_target["/conf"] == Mount(type="bind", source="/host/conf", target="/conf",
                                       readonly=True)
    cache = by_target["/cache"]  # the image's VOLUME, anonymous: its own per slot
    assert cache.source.startswith("/state/volumes/demo_db-1_")
    assert d.containers[1].spec.mounts[-1].source.startswith("/state/volumes/demo_db-2_")
    assert "demo_data" in d.volumes and len(d.volumes) == 3


def test_tmpfs_is_noexec_as_dockers_and_a_subpath_is_kept(tmp_path: Path) -> None:
    d = build("""
services:
  app:
    image: busybox
    tmpfs: ["/run:size=1m,uid=7", "/jit:exec,mode=700"]
    volumes:
      - {type: tmpfs, target: /scratch, tmpfs: {size: 2m}}
      - {type: volume, source: data, target: /srv/uploads, volume: {subpath: app/uploads}}
volumes:
  data: {}
""", tmp_path)
    by_target = {m.target: m for m in d.containers[0].spec.mounts}
    assert by_target["/run"] == Mount(type="tmpfs", target="/run", size=1 << 20, uid=7,
                                      noexec=True)
    assert by_target["/jit"] == Mount(type="tmpfs", target="/jit", mode=0o700)
    assert by_target["/scratch"] == Mount(type="tmpfs", target="/scratch", size=2 << 20,
                                          noexec=True)
    assert by_target["/srv/uploads"] == Mount(
        type="volume", target="/srv/uploads", source="/state/volumes/demo_data/data",
        subpath="app/uploads")


HASH_BASE = """
services:
  web:
    image: busybox
    environment: {LOG_LEVEL: info}
    env_file: [web.env]
    depends_on: [db]
    restart: "no"
  db:
    image: busybox
"""


def hashes(text: str, tmp_path: Path, **kw: object) -> dict[str, str]:
    d = build(text, tmp_path, **kw)  # type: ignore[arg-type]
    return {c.slot: c.config_hash.digest for c in d.containers}


def test_what_changes_the_hash_and_what_does_not(tmp_path: Path) -> None:
    (tmp_path / "web.env").write_text("A=1\n")
    base = hashes(HASH_BASE, tmp_path)
    # environment: only web changes
    env = hashes(HASH_BASE.replace("LOG_LEVEL: info", "LOG_LEVEL: debug"), tmp_path)
    assert env["web-1"] != base["web-1"] and env["db-1"] == base["db-1"]
    # env_file contents count
    (tmp_path / "web.env").write_text("A=2\n")
    assert hashes(HASH_BASE, tmp_path)["web-1"] != base["web-1"]
    (tmp_path / "web.env").write_text("A=1\n")
    # a re-pulled tag with a new digest
    repulled = BUSYBOX.model_copy(update={"digest": "sha256:" + "b" * 64})
    assert hashes(HASH_BASE, tmp_path, image=repulled)["web-1"] != base["web-1"]
    # deliberately ignored: scale, depends_on, restart
    assert hashes(HASH_BASE, tmp_path, scale={"web": 3})["web-1"] == base["web-1"]
    ignored = HASH_BASE.replace("    depends_on: [db]\n", "").replace('"no"', "always")
    assert hashes(ignored, tmp_path) == base


def test_restart_policy_and_the_unhealthy_opt_out(tmp_path: Path) -> None:
    d = build("""
services:
  a: {image: busybox, restart: "on-failure:3", x-stackd: {restart_on_unhealthy: false}}
  b:
    image: busybox
    restart: always
    deploy: {restart_policy: {condition: on-failure, delay: 2s, max_attempts: 5, window: 1m}}
""", tmp_path)
    a, b = d.services["a"], d.services["b"]
    assert (a.restart.name, a.restart.max_attempts, a.restart_on_unhealthy) == (
        "on-failure", 3, False)
    assert (b.restart.name, b.restart.delay, b.restart.max_attempts, b.restart.window) == (
        "on-failure", 2.0, 5, 60.0)
    assert b.restart_on_unhealthy


def test_waiting_for_health_of_a_service_without_a_healthcheck_is_an_error(
        tmp_path: Path) -> None:
    plain = BUSYBOX.model_copy(update={"config": BUSYBOX.config.model_copy(
        update={"healthcheck": None})})
    with pytest.raises(SpecError, match="'db' has no healthcheck"):
        build("""
services:
  db: {image: busybox}
  api: {image: busybox, depends_on: {db: {condition: service_healthy}}}
""", tmp_path, image=plain)


def test_a_service_healthcheck_takes_the_timings_it_leaves_out_from_the_image(
        tmp_path: Path) -> None:
    """As Docker merges them: `healthcheck: {test: …}` alone kept the image's 7s
    interval before being read as 30s, the default spelled out in the model."""
    d = build("services:\n  a: {image: busybox, healthcheck: {test: 'true', retries: 0}}\n"
              "  b: {image: busybox, healthcheck: {test: 'true', interval: 2s}}\n", tmp_path)
    a, b = d.services["a"].healthcheck, d.services["b"].healthcheck
    assert a is not None and (a.interval, a.timeout, a.retries) == (7.0, 30.0, 3)
    assert b is not None and b.interval == 2.0
    plain = BUSYBOX.model_copy(update={"config": BUSYBOX.config.model_copy(
        update={"healthcheck": None})})
    c = build("services:\n  c: {image: busybox, healthcheck: {test: 'true'}}\n", tmp_path,
              image=plain).services["c"].healthcheck
    assert c is not None and (c.interval, c.timeout, c.retries, c.start_interval) == (
        30.0, 30.0, 3, 5.0)


def test_service_healthcheck_overrides_timings_and_can_disable(tmp_path: Path) -> None:
    d = build("""
services:
  a: {image: busybox, healthcheck: {test: "wget -q localhost", interval: 2s, retries: 5}}
  b: {image: busybox, healthcheck: {disable: true}}
""", tmp_path)
    a = d.services["a"].healthcheck
    assert a is not None
    assert (a.args, a.interval, a.retries) == (("/bin/sh", "-c", "wget -q localhost"), 2.0, 5)
    assert d.services["b"].healthcheck is None
    assert d.waves == (("a", "b"),)


def test_depends_on_keeps_restart_true(tmp_path: Path) -> None:
    desired = build("""
services:
  db: {image: busybox}
  api:
    image: busybox
    depends_on: {db: {condition: service_started, restart: true}}
  web: {image: busybox, depends_on: [db]}
""", tmp_path)
    assert [d.restart for d in desired.services["api"].depends_on] == [True]
    assert [d.restart for d in desired.services["web"].depends_on] == [False]


def test_json_file_logging_options_size_the_containers_log(tmp_path: Path) -> None:
    d = build("services:\n  a:\n    image: busybox\n    logging:\n      driver: json-file\n"
              "      options: {max-size: 2k, max-file: 5, compress: 'true'}\n"
              "  b:\n    image: busybox\n", tmp_path)
    a, b = (d.containers_of(s)[0].spec.log for s in ("a", "b"))
    assert (a.max_size, a.max_files) == (2048, 5)
    assert (b.max_size, b.max_files) == (10 * 1024 * 1024, 3)  # stackd's defaults


@pytest.mark.parametrize(("logging", "said"), [
    ("driver: syslog", "logging: driver 'syslog' is not supported yet"),
    ("options: {syslog-address: 'udp://127.0.0.1:514'}",
     "logging: option 'syslog-address' is not supported yet"),
    ("options: {max-file: many}", "logging: max-file 'many' is not a number of files"),
    ("options: {max-size: 0}", "logging: max-size must be more than 0 bytes"),
])
def test_logging_that_would_be_ignored_is_refused_by_name(logging: str, said: str) -> None:
    """`logging:` was accepted and ignored whole: a syslog driver sent nothing anywhere."""
    with pytest.raises(SpecError) as err:
        load_text(f"services:\n  a:\n    image: busybox\n    logging:\n      {logging}\n",
                  environ={})
    assert said in str(err.value)


def test_a_field_added_to_the_spec_leaves_containers_without_it_as_they_were(
        tmp_path: Path) -> None:
    """oom_score_adj came after containers were made: unset, it is not in the hashed
    document at all (an upgrade recreates nothing); set, it changes the hash."""
    from stackd.reconciler.hash import hashed_document

    base = build("services:\n  a: {image: busybox}\n", tmp_path).containers[0]
    doc = hashed_document(base.spec, image={})
    assert not any("oom_score_adj" in key for key in doc)
    for added in ("memory_swappiness", "oom_kill_disable", "device_cgroup_rules",
                  "blkio_weight", "blkio_devices", "annotations"):
        assert added not in str(doc), added  # nor these, which came later still
    set_ = build("services:\n  a: {image: busybox, oom_score_adj: 500}\n", tmp_path)
    assert set_.containers[0].spec.process.oom_score_adj == 500
    assert set_.containers[0].config_hash.digest != base.config_hash.digest


def test_the_hash_of_a_plain_service_is_pinned(tmp_path: Path) -> None:
    """The digest of a service that uses no new key, as the stackd of 2026-12-05 made
    it. A change here recreates every container of every user at their upgrade: if
    that is meant, say so in the commit; if not, see hash._HASHED_WHEN_SET."""
    d = build("services:\n  a: {image: busybox, mem_limit: 64m, devices: ['/dev/null:/dev/n']}\n",
              tmp_path)
    assert d.containers[0].config_hash.digest == (
        "c6160ec21c6565e387d31b6704e0fa5a69ed9826a59dbd39998def3ed895ccf0")


def test_the_hash_of_a_service_with_mounts_and_ports_is_pinned(tmp_path: Path) -> None:
    """As the stackd of 2026-12-05 made it: fields added to every mount (subpath, a
    tmpfs's owner and noexec, seed_plain) and port (meshed) recreated every container
    that had a volume or a port at the upgrade, before they were hashed only when set."""
    d = build("services:\n  a:\n    image: busybox\n"
              "    volumes: ['data:/d', '/srv/x:/x:ro', '/anon']\n    ports: ['8080:80']\n"
              "volumes: {data: {}}\n", tmp_path)
    assert d.containers[0].config_hash.digest == (
        "e54356d784be4639eb857dce773265568e04dab793ba020f9f06351d31f0f8ac")


def test_network_mode_service_joins_the_namespace_its_target_is_in(tmp_path: Path) -> None:
    d = build("services:\n  vpn: {image: busybox}\n"
              "  app: {image: busybox, network_mode: 'service:vpn'}\n"
              "  side: {image: busybox, network_mode: 'service:app'}\n"
              "  hosty: {image: busybox, network_mode: host}\n"
              "  onhost: {image: busybox, network_mode: 'service:hosty'}\n", tmp_path)
    net = {c.service: c.spec.namespaces.net for c in d.containers}
    vpn = d.containers_of("vpn")[0]
    assert net["app"] == net["side"] == f"/run/stackd/netns/{vpn.id}"  # a chain: vpn's
    assert net["onhost"] == "host"
    assert not d.containers_of("app")[0].attachments
    with pytest.raises(SpecError, match="'none' has network_mode none"):
        build("services:\n  none: {image: busybox, network_mode: none}\n"
              "  x: {image: busybox, network_mode: 'service:none'}\n", tmp_path)


def test_pid_and_ipc_service_join_the_namespaces_of_the_targets_first_container(
        tmp_path: Path) -> None:
    d = build("services:\n  app: {image: busybox, scale: 2}\n"
              "  debug: {image: busybox, pid: 'service:app', ipc: 'service:app'}\n"
              "  chained: {image: busybox, pid: 'service:debug'}\n"
              "  tool: {image: busybox, pid: host}\n"
              "  ontool: {image: busybox, pid: 'service:tool', ipc: shareable}\n", tmp_path)
    ns = {c.service: c.spec.namespaces for c in d.containers}
    first = d.containers_of("app")[0]
    assert ns["debug"].pid == ns["debug"].ipc == ns["chained"].pid == f"container:{first.id}"
    assert ns["chained"].ipc == "new"
    assert (ns["ontool"].pid, ns["ontool"].ipc) == ("host", "new")
    # In its namespaces: made again after app is, as `restart: true` asks.
    (dep,) = d.services["debug"].depends_on
    assert (dep.service, dep.restart) == ("app", True)
    with pytest.raises(SpecError, match="'container:web' is not supported yet"):
        build("services:\n  x: {image: busybox, ipc: 'container:web'}\n", tmp_path)
    with pytest.raises(SpecError, match="shares the process namespace of 'nope'"):
        build("services:\n  x: {image: busybox, pid: 'service:nope'}\n", tmp_path)


def test_a_volume_binding_a_host_directory_mounts_that_directory(tmp_path: Path) -> None:
    d = build("""
services:
  db:
    image: busybox
    volumes: ["data:/var/lib/db", "plain:/p"]
volumes:
  data: {driver: local, driver_opts: {type: none, o: bind, device: /srv/pg}}
  plain: {}
""", tmp_path)
    by_target = {m.target: m for m in d.containers[0].spec.mounts}
    assert by_target["/var/lib/db"] == Mount(type="volume", target="/var/lib/db",
                                             source="/srv/pg", seed_plain=True)
    assert by_target["/p"].source == "/state/volumes/demo_plain/data"


def test_a_networks_bridge_options_reach_its_spec_and_the_ports(tmp_path: Path) -> None:
    d = build("""
services:
  web:
    image: busybox
    ports: ["8080:80", "0.0.0.0:8443:443"]
    networks: {front: {priority: 10}, back: {}}
  off:
    image: busybox
    network_mode: host
networks:
  front:
    driver_opts:
      com.docker.network.bridge.host_binding_ipv4: 127.0.0.1
      com.docker.network.bridge.enable_icc: "false"
  back: {}
""", tmp_path)
    (web,) = d.containers_of("web")
    # A port naming no address takes the first network's; one that names it keeps it.
    assert [(p.host_ip, p.host_port) for p in web.ports] == [("127.0.0.1", 8080),
                                                             ("0.0.0.0", 8443)]
    assert d.networks["demo_front"].isolated and not d.networks["demo_back"].isolated


def test_a_port_of_mode_host_is_not_meshed(tmp_path: Path) -> None:
    d = build("""
services:
  agent:
    image: busybox
    ports: [{target: 9100, published: "9100", mode: host}, "8080:80"]
""", tmp_path)
    (agent,) = d.containers_of("agent")
    assert [(p.host_port, p.meshed) for p in agent.ports] == [(9100, False), (8080, True)]


def test_a_zero_healthcheck_timing_is_the_default_and_under_a_millisecond_is_refused(
        tmp_path: Path) -> None:
    """Docker reads 0 as unset; here `interval: 0s` probed without pause and
    `timeout: 0s` failed every probe at once, so the service was never healthy."""
    d = build("services:\n  a: {image: busybox, healthcheck: {test: 'true', interval: 0s,"
              " timeout: 0s, start_interval: 0s}}\n", tmp_path)
    a = d.services["a"].healthcheck
    # The image's interval (its HEALTHCHECK says 7s), Docker's defaults for the rest.
    assert a is not None and (a.interval, a.timeout, a.start_interval) == (7.0, 30.0, 5.0)
    with pytest.raises(SpecError, match="healthcheck interval 500us is less than 1ms"):
        build("services:\n  a: {image: busybox, healthcheck: {interval: 500us}}\n", tmp_path)
    fast = BUSYBOX.model_copy(update={"config": BUSYBOX.config.model_copy(update={
        "healthcheck": Healthcheck(test=("CMD", "true"), interval=1e-9)})})
    with pytest.raises(SpecError, match="its HEALTHCHECK interval is less than 1ms"):
        build("services:\n  a: {image: busybox}\n", tmp_path, image=fast)
    own = build("services:\n  a: {image: busybox, healthcheck: {interval: 2s}}\n", tmp_path,
                image=fast).services["a"].healthcheck
    assert own is not None and own.interval == 2.0  # the service's timings stand


def test_a_node_runs_the_global_slots_the_cluster_gave_it(tmp_path: Path) -> None:
    """A global service has one replica in the file; the cluster counts one a node, so
    a node holding slot 3 ran nothing before (3 is beyond the file's count)."""
    text = "services:\n  agent: {image: busybox, deploy: {mode: global}}\n  web: {image: busybox}\n"
    d = build(text, tmp_path, slots={"agent": frozenset({3}), "web": frozenset({2})})
    assert [(c.service, c.index) for c in d.containers] == [("agent", 3)]


def test_a_custom_hostname_answers_in_dns_on_each_network(tmp_path: Path) -> None:
    """Docker's DNS (20.10 on) answers for a container's hostname when it is not its
    name; stackd's answered only names and aliases (`nslookup dbhost` failed)."""
    from stackd.reconciler.lifecycle import dns_attachments

    d = build("services:\n  db: {image: busybox, hostname: dbhost, networks: [a, b]}\n"
              "  web: {image: busybox}\nnetworks: {a: {}, b: {}}\n", tmp_path)
    db, web = d.containers_of("db")[0], d.containers_of("web")[0]
    assert [a.aliases for a in dns_attachments(db)] == [("db", "dbhost")] * 2
    assert dns_attachments(web) == web.attachments  # its hostname is its name
    assert "dbhost" not in str([a.aliases for a in db.attachments])  # not in the hash


def test_a_links_alias_belongs_to_the_linking_container(tmp_path: Path) -> None:
    """An old compose file's `links: [postgres:db]`: the app connects to `db`. The
    alias is the app's attachment's (Docker answers it to the linking container
    alone), never a name of postgres on the network; a changed alias recreates the
    app (Compose's hash covers links), not postgres."""
    from stackd.reconciler.lifecycle import dns_attachments

    text = ("services:\n  postgres: {image: busybox}\n"
            "  app: {image: busybox, links: ['postgres:db', 'postgres']}\n")
    d = build(text, tmp_path)
    (pg,), (app,) = d.containers_of("postgres"), d.containers_of("app")
    assert [a.aliases for a in dns_attachments(pg)] == [("postgres",)]
    assert [a.links for a in dns_attachments(app)] == [(("db", "postgres"),)]
    assert [a.links for a in pg.attachments] == [()]
    plain = build(text.replace("['postgres:db', 'postgres']", "[postgres]"), tmp_path)
    assert plain.containers_of("postgres")[0].config_hash == pg.config_hash
    assert plain.containers_of("app")[0].config_hash != app.config_hash
    turned = build(text.replace("['postgres:db', 'postgres']", "[postgres, 'postgres:db']"),
                   tmp_path)
    assert turned.containers_of("app")[0].config_hash == app.config_hash
    # Without an alias, nothing of links is hashed (the pinned hashes below: an
    # upgrade recreates no container that has none).
    alone = build("services:\n  postgres: {image: busybox}\n  app: {image: busybox}\n",
                  tmp_path)
    assert alone.containers_of("app")[0].config_hash == plain.containers_of("app")[0].config_hash


def test_a_run_container_keeps_its_links_and_answers_for_none(tmp_path: Path) -> None:
    """A one-off never answers for its service's names (Compose's) unless
    --use-aliases, and never for another service's link alias; a one-off of the
    linking service resolves its links as the service's containers do."""
    from stackd.daemon.models import StackSource
    from stackd.daemon.oneoff import ServiceRunRequest, oneoff_container
    from stackd.reconciler.lifecycle import dns_attachments

    text = "services:\n  pg: {image: busybox}\n  app: {image: busybox, links: ['pg:db']}\n"
    stack = load_text(text, project_name="demo", environ={}, project_directory=tmp_path)
    (slot,) = build(text, tmp_path).containers_of("pg")
    for use_aliases, names in ((False, ()), (True, ("pg",))):
        request = ServiceRunRequest(source=StackSource(), service="pg",
                                    use_aliases=use_aliases)
        one = oneoff_container(slot, request, stack.services["pg"], BUSYBOX.config,
                               name="demo-pg-run-0a1b2c")
        assert [a.aliases for a in dns_attachments(one)] == [names]
        (app_slot,) = build(text, tmp_path).containers_of("app")
        request = ServiceRunRequest(source=StackSource(), service="app",
                                    use_aliases=use_aliases)
        one = oneoff_container(app_slot, request, stack.services["app"], BUSYBOX.config,
                               name="demo-app-run-0a1b2c")
        assert [a.links for a in one.attachments] == [(("db", "pg"),)]
