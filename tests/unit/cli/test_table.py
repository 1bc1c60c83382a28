"""The CLI's one table printer, and the three tables that use it, as golden text."""

from __future__ import annotations

from datetime import UTC, datetime

from stackd.cli.cmd_network import table as network_table
from stackd.cli.cmd_ps import table as ps_table
from stackd.cli.image_view import image_table
from stackd.cli.table import render
from stackd.images.models import ImageSummary


def test_columns_align_and_lines_have_no_trailing_blanks() -> None:
    assert render(("A", "BB"), [("xyz", ""), (1, 22)]) == "A     BB\nxyz\n1     22"
    assert render(("A", "B"), [], gap="  ") == "A  B"


def test_the_cli_tables_go_through_it() -> None:
    assert network_table([{"name": "demo_default", "project": "demo", "bridge": "stkab12b1",
                           "subnet": "10.1.0.0/24", "gateway": "10.1.0.1",
                           "internal": True}]) == (
        "NAME           PROJECT   BRIDGE      SUBNET        GATEWAY    INTERNAL\n"
        "demo_default   demo      stkab12b1   10.1.0.0/24   10.1.0.1   yes")
    assert ps_table([{"name": "demo-web-1", "service": "web", "state": "created",
                      "image": "nginx:1.27", "command": ["nginx", "-g", "daemon off;"],
                      "ports": ["0.0.0.0:80->80/tcp"]}]).splitlines() == [
        "NAME         IMAGE        COMMAND                  SERVICE   CREATED   STATUS    PORTS",
        'demo-web-1   nginx:1.27   "nginx -g daemon off;"   web                 Created   '
        "0.0.0.0:80->80/tcp"]
    img = ImageSummary(id="sha256:" + "ab" * 32, digest="sha256:" + "cd" * 32,
                       references=("busybox:latest",),
                       created="2024-01-02T03:04:05Z", size=2048)
    a_month_on = datetime(2024, 2, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert image_table([img], now=a_month_on) == (  # Docker's words and sizes
        "REPOSITORY  TAG     IMAGE ID      CREATED      SIZE\n"
        "busybox     latest  abababababab  4 weeks ago  2.05kB")
