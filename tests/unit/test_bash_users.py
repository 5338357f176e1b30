"""User names from the passwd file of each process's own root, with fake /proc trees."""

from __future__ import annotations

import os
from pathlib import Path

from exporter.enrich.users import User, UserNames, map_uid, parse_passwd

HOST_PASSWD = "root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/bash\n"
CONTAINER_PASSWD = "root:x:0:0:root:/root:/bin/sh\ncontaineruser:x:4242:4242::/home/c:/bin/bash\n"


def fake_process(proc: Path, pid: int, root: Path, uid_map: str | None = None) -> None:
    """/proc/<pid>/root pointing at `root`, as the kernel's magic link does."""
    (proc / str(pid)).mkdir(parents=True)
    os.symlink(root, proc / str(pid) / "root")
    if uid_map is not None:
        (proc / str(pid) / "uid_map").write_text(uid_map)


def fake_root(path: Path, passwd: str) -> Path:
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "passwd").write_text(passwd)
    return path


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_parse_passwd() -> None:
    text = ("# comment\nroot:x:0:0:root:/root:/bin/bash\n\nbroken line\nnobody:x:notanumber:1::/:/bin/false\n"
            "+nis_entry::::::\ntoor:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/bash")
    assert parse_passwd(text) == {0: "root", 1000: "bob"}  # the first name of a uid wins


def test_map_uid_through_a_user_namespace() -> None:
    assert map_uid("         0          0 4294967295\n", 4242) == 4242
    assert map_uid("         0     100000      65536\n", 104242) == 4242
    assert map_uid("         0     100000      65536\n", 1000) is None
    assert map_uid("0 1000 1\n1 100000 65536\n", 1000) == 0


def test_each_process_is_looked_up_in_its_own_root(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 10, fake_root(tmp_path / "host", HOST_PASSWD))
    fake_process(proc, 20, fake_root(tmp_path / "container", CONTAINER_PASSWD))
    users = UserNames(proc)
    assert users.lookup(10, 0) == User(0, "root")
    assert users.lookup(10, 1000) == User(1000, "bob")
    assert users.lookup(20, 4242) == User(4242, "containeruser")
    assert users.lookup(10, 4242) == User(4242, None)  # not in the host's passwd


def test_uid_is_mapped_into_the_process_namespace_first(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 30, fake_root(tmp_path / "c", CONTAINER_PASSWD), uid_map="0 100000 65536\n")
    assert UserNames(proc).lookup(30, 104242) == User(4242, "containeruser")


def test_passwd_is_cached_per_root_until_the_ttl(tmp_path: Path) -> None:
    proc, clock = tmp_path / "proc", Clock()
    root = fake_root(tmp_path / "c", CONTAINER_PASSWD)
    fake_process(proc, 20, root)
    fake_process(proc, 21, root)
    users = UserNames(proc, ttl=60, clock=clock)
    assert users.lookup(20, 4242).name == "containeruser"
    (root / "etc" / "passwd").write_text("renamed:x:4242:4242::/:/bin/sh\n")
    assert users.lookup(21, 4242).name == "containeruser"  # same root: cached
    clock.now += 61
    assert users.lookup(21, 4242).name == "renamed"


def test_a_process_that_exited_keeps_the_names_of_its_root(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 20, fake_root(tmp_path / "c", CONTAINER_PASSWD))
    users = UserNames(proc)
    assert users.lookup(20, 4242).name == "containeruser"
    (proc / "20" / "root").unlink()
    assert users.lookup(20, 4242) == User(4242, "containeruser")
    assert users.lookup(99, 0) == User(0, None)  # never seen, and gone


def test_a_root_without_passwd_has_no_names(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (tmp_path / "distroless").mkdir()
    fake_process(proc, 40, tmp_path / "distroless")
    assert UserNames(proc).lookup(40, 0) == User(0, None)


def test_a_process_remembered_while_alive_resolves_after_it_exits(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 20, fake_root(tmp_path / "c", CONTAINER_PASSWD))
    users = UserNames(proc)
    users.remember(20)  # as the collector's scan does for every bash it sees
    (proc / "20" / "root").unlink()
    assert users.lookup(20, 4242) == User(4242, "containeruser")
    users.remember(99)  # gone already: nothing to note
