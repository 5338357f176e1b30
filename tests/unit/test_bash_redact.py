"""Redaction with the default Bash.Redact patterns (exporter/default.yaml): exact output for each case."""

from __future__ import annotations

import re

import pytest

from exporter.collectors.bash_redact import redact
from exporter.config import load_config

DEFAULTS = load_config(None, {}).bash.redact


@pytest.mark.parametrize("line,expected", [
    # password=...
    ("export DB_PASSWORD=hunter2", "export DB_PASSWORD=***"),
    ("MYSQL_PWD=s3cr3t mysql -u root", "MYSQL_PWD=*** mysql -u root"),
    ("echo password=\"two words\" done", "echo password=*** done"),
    ("curl -d 'user=bob&password=pa55&x=1' http://h/login", "curl -d 'user=bob&password=***&x=1' http://h/login"),
    ("curl -d '{\"password\":\"pa55\"}' http://h", "curl -d '{\"password\":***}' http://h"),
    # --password ... / --password=...
    ("app --password s3cret --user bob", "app --password *** --user bob"),
    ("app --password=s3cret --user=bob", "app --password=*** --user=bob"),
    ("app --passwd 'a b c'", "app --passwd ***"),
    # mysql -p<secret>
    ("mysql -u root -pS3cret -h db", "mysql -u root -p*** -h db"),
    ("mysqldump -uroot -p'x y' shop | gzip > shop.sql.gz", "mysqldump -uroot -p*** shop | gzip > shop.sql.gz"),
    ("mariadb -proot123 -e 'select 1'", "mariadb -p*** -e 'select 1'"),
    # Authorization headers
    ("curl -H \"Authorization: Bearer eyJhbGciOi.x.y\" https://api", "curl -H \"Authorization: Bearer ***\" https://api"),
    ("curl -H 'authorization: Basic dXNlcjpwYXNz' https://api", "curl -H 'authorization: Basic ***' https://api"),
    ("wget --header='Proxy-Authorization: abc123' http://h", "wget --header='Proxy-Authorization: ***' http://h"),
    # token=...
    ("curl 'https://h/api?access_token=abc123&page=2'", "curl 'https://h/api?access_token=***&page=2'"),
    ("export GITHUB_TOKEN=ghp_0123456789abcdef", "export GITHUB_TOKEN=***"),
    ("vault login --token s.abcdef", "vault login --token ***"),
    # AWS
    ("aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE", "aws configure set aws_access_key_id ***"),
    ("aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
     "aws configure set aws_secret_access_key ***"),
    ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "export AWS_SECRET_ACCESS_KEY=***"),
    # credentials in a URL
    ("git clone https://bob:ghp_abc@github.com/o/r.git", "git clone https://bob:***@github.com/o/r.git"),
    # several secrets on one line
    ("mysql -uroot -pX1 && curl -H 'Authorization: Bearer T2' u?token=T3",
     "mysql -uroot -p*** && curl -H 'Authorization: Bearer ***' u?token=***"),
])
def test_default_patterns_redact_the_secret_and_nothing_else(line: str, expected: str) -> None:
    assert redact(line, DEFAULTS) == expected


@pytest.mark.parametrize("line", [
    "ls -la /etc",
    "mkdir -p /tmp/x && cp -pr a b",
    "ssh -p 2222 host",
    "mysql -p shop",  # -p alone: mysql prompts for the password
    "mysql --port=3306 -u root shop",
    "PATH=$PWD/bin:$PATH make",
    "passwd bob",
    "echo password=",
    "curl http://example.com:8080/x",
    "grep -i token README.md",
    "echo AKIA1234",  # too short to be an access key id
])
def test_ordinary_commands_are_left_alone(line: str) -> None:
    assert redact(line, DEFAULTS) == line


def test_a_pattern_without_a_secret_group_masks_its_whole_match() -> None:
    assert redact("deploy with key sk-live-123 now", [re.compile(r"sk-live-\d+")]) == "deploy with key *** now"


def test_a_secret_group_that_did_not_take_part_masks_the_whole_match() -> None:
    pattern = re.compile(r"pin (?:(?P<secret>\d+)|hidden)")
    assert redact("pin 1234, pin hidden", [pattern]) == "pin ***, ***"


def test_no_patterns_change_nothing() -> None:
    assert redact("echo password=x", []) == "echo password=x"
