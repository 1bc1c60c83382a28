"""What a Dockerfile instruction that makes no layer does to an image's config (ENV,
LABEL, USER, EXPOSE, CMD, ENTRYPOINT, SHELL, STOPSIGNAL, VOLUME, HEALTHCHECK,
MAINTAINER; WORKDIR's config half). Pure: the builder's config steps and `stackd
commit --change` both go through `configure`.
"""

from __future__ import annotations

import json
import re

from stackd.images.build.dockerfile import Instruction, expand, key_values, split_words
from stackd.images.models import Healthcheck, ImageConfig, in_image

DEFAULT_SHELL = ("/bin/sh", "-c")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str) -> float:
    total, pos = 0.0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration like 30s, 1m30s or 500ms")
    return total


def configure(cfg: ImageConfig, ins: Instruction, env: dict[str, str], file: str
              ) -> ImageConfig:
    """`cfg` as `ins` leaves it; `env` expands its words. An instruction that makes a
    layer (RUN, COPY, ADD) is an error naming the line."""
    if ins.cmd == "ENV":
        new_env = dict(env_pairs(cfg.env))
        for k, v in key_values(ins.args, env, legacy_space_form=True):
            new_env[k] = v
        return cfg.model_copy(update={"env": tuple(f"{k}={v}" for k, v in new_env.items())})
    if ins.cmd == "LABEL":
        labels = dict(cfg.labels)
        labels.update(key_values(ins.args, env, legacy_space_form=True))
        return cfg.model_copy(update={"labels": labels})
    if ins.cmd == "MAINTAINER":
        return cfg.model_copy(update={"labels": {**cfg.labels, "maintainer": ins.args}})
    if ins.cmd == "USER":
        return cfg.model_copy(update={"user": expand(ins.args, env)})
    if ins.cmd == "WORKDIR":
        path = expand(ins.args, env)
        return cfg.model_copy(update={
            "working_dir": in_image(path, cfg.working_dir or "/")})
    if ins.cmd == "EXPOSE":
        ports = set(cfg.exposed_ports)
        for word in split_words(ins.args):
            ports.update(_ports(expand(word, env)))
        return cfg.model_copy(update={"exposed_ports": tuple(sorted(ports))})
    if ins.cmd in ("CMD", "ENTRYPOINT"):
        value = ins.json_args if ins.json_args is not None else (
            *(cfg.shell or DEFAULT_SHELL), ins.args)
        return cfg.model_copy(update={ins.cmd.lower(): tuple(value)})
    if ins.cmd == "SHELL":
        if ins.json_args is None:
            raise ins.error(file, 'SHELL needs the JSON form, e.g. SHELL ["/bin/ash", "-c"]')
        return cfg.model_copy(update={"shell": ins.json_args})
    if ins.cmd == "STOPSIGNAL":
        return cfg.model_copy(update={"stop_signal": expand(ins.args, env)})
    if ins.cmd == "VOLUME":
        vols = set(cfg.volumes)
        vols.update(ins.json_args if ins.json_args is not None else
                    [expand(w, env) for w in split_words(ins.args)])
        return cfg.model_copy(update={"volumes": tuple(sorted(vols))})
    if ins.cmd == "HEALTHCHECK":
        return cfg.model_copy(update={"healthcheck": healthcheck(ins, file)})
    raise ins.error(file, f"{ins.cmd} does not change an image's config",
                    hint="CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, …")


def healthcheck(ins: Instruction, file: str) -> Healthcheck:
    if ins.args.strip().upper() == "NONE":
        return Healthcheck(test=("NONE",))
    word, _, rest = ins.args.partition(" ")
    if word.upper() != "CMD":
        raise ins.error(file, "expected HEALTHCHECK [OPTIONS] CMD command, or NONE")
    rest = rest.strip()
    try:
        exec_form = json.loads(rest) if rest.startswith("[") else None
    except ValueError:
        exec_form = None
    test = ("CMD", *exec_form) if isinstance(exec_form, list) else ("CMD-SHELL", rest)
    f = ins.flags
    return Healthcheck(
        test=test,
        interval=parse_duration(f["interval"]) if "interval" in f else None,
        timeout=parse_duration(f["timeout"]) if "timeout" in f else None,
        retries=int(f["retries"]) if "retries" in f else None,
        start_period=parse_duration(f["start-period"]) if "start-period" in f else None,
        start_interval=(parse_duration(f["start-interval"]) if "start-interval" in f
                        else None),
    )


def env_pairs(env: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(e.partition("=")[0], e.partition("=")[2]) for e in env]


def env_dict(env: tuple[str, ...]) -> dict[str, str]:
    return dict(env_pairs(env))


def _ports(text: str) -> list[str]:
    port, _, proto = text.partition("/")
    proto = proto or "tcp"
    if "-" in port:
        lo, hi = port.split("-", 1)
        return [f"{p}/{proto}" for p in range(int(lo), int(hi) + 1)]
    int(port)
    return [f"{port}/{proto}"]
