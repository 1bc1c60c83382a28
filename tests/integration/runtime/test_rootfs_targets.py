"""Mount targets the image's own tree makes impossible are refused with a SpecError
that names the target and why, and the container is not left behind."""

from __future__ import annotations

import pytest

from stackd.errors import SpecError
from stackd.runtime.containerspec import Mount

pytestmark = pytest.mark.root


@pytest.mark.parametrize(("fields", "message"), [
    ({"mounts": (Mount(type="tmpfs", target="/bin/busybox/x"),)},
     "cannot mount at /bin/busybox/x in the container: a part of it is not a directory "
     "in the image"),
    ({"mounts": (Mount(type="tmpfs", target="/bin/.."),)},
     "cannot mount at /bin/..: it is the container's root"),
    ({"files": {"/etc": "x\n"}},
     "cannot mount at /etc in the container: it is a directory in the image"),
], ids=["through a file", "the root", "file over a directory"])
async def test_impossible_targets_are_spec_errors(rt, make_spec, fields, message) -> None:
    with pytest.raises(SpecError) as err:
        await rt.create(make_spec("fs-target", "true", **fields))
    assert err.value.message == message
    assert await rt.list() == []
