"""DomainCache and resolved_addresses: which name an address was resolved from, for how long, how many."""

from __future__ import annotations

from exporter.collectors.dns_lookups import resolved_addresses
from exporter.collectors.dns_wire import Answer
from exporter.enrich.domains import DomainCache

A, CNAME, AAAA = 1, 5, 28


START = 1000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def at(self, seconds_after_start: float) -> None:
        self.now = START + seconds_after_start


def a(owner: str, address: str, ttl: int = 300) -> Answer:
    return Answer(owner, A, ttl, address)


def cname(owner: str, target: str) -> Answer:
    return Answer(owner, CNAME, 300, target)


def learn(domains: DomainCache, question: str, answers: list[Answer]) -> None:
    """What the dns collector does with an answer."""
    domains.learn(question, resolved_addresses(question, answers))


def test_learning_changes_the_version() -> None:
    domains, _ = cache()
    before = domains.version
    learn(domains, "example.com", [a("example.com", "192.0.2.1")])
    assert domains.version != before


def cache(capacity: int = 100, ttl_min: float = 30, ttl_max: float = 3600) -> tuple[DomainCache, FakeClock]:
    clock = FakeClock()
    return DomainCache(capacity, ttl_min, ttl_max, clock=clock), clock


# resolved_addresses


def test_a_and_aaaa_records_of_the_question() -> None:
    answers = [a("example.com", "192.0.2.1", ttl=60), Answer("example.com", AAAA, 120, "2001:db8::1")]
    assert resolved_addresses("example.com", answers) == [("192.0.2.1", 60), ("2001:db8::1", 120)]


def test_cname_chain_is_followed() -> None:
    answers = [cname("www.example", "edge.cdn"), cname("edge.cdn", "node.cdn"), a("node.cdn", "198.51.100.7")]
    assert resolved_addresses("www.example", answers) == [("198.51.100.7", 300)]


def test_cname_chain_in_reverse_order_is_followed() -> None:
    answers = [a("node.cdn", "198.51.100.7"), cname("edge.cdn", "node.cdn"), cname("www.example", "edge.cdn")]
    assert resolved_addresses("www.example", answers) == [("198.51.100.7", 300)]


def test_records_of_unrelated_owners_are_ignored() -> None:
    answers = [a("www.example", "192.0.2.1"), a("tracker.example", "203.0.113.9"), cname("other.example", "cdn"),
               a("cdn", "203.0.113.10")]
    assert resolved_addresses("www.example", answers) == [("192.0.2.1", 300)]


def test_cname_loop_ends() -> None:
    answers = [cname("a.example", "b.example"), cname("b.example", "a.example"), a("b.example", "192.0.2.2")]
    assert resolved_addresses("a.example", answers) == [("192.0.2.2", 300)]


def test_no_answers_no_addresses() -> None:
    assert resolved_addresses("example.com", []) == []
    assert resolved_addresses("example.com", [cname("example.com", "cdn.example")]) == []


# DomainCache


def test_learnt_address_names_the_question_not_the_cname_target() -> None:
    domains, _ = cache()
    learn(domains, "www.example", [cname("www.example", "edge.cdn"), a("edge.cdn", "198.51.100.7")])
    assert domains.name("198.51.100.7") == "www.example"
    assert domains.name("198.51.100.8") is None


def test_aaaa_address_is_learnt() -> None:
    domains, _ = cache()
    learn(domains, "example.com", [Answer("example.com", AAAA, 300, "2001:db8::1")])
    assert domains.name("2001:db8::1") == "example.com"


def test_entry_lives_for_its_ttl() -> None:
    domains, clock = cache(ttl_min=30, ttl_max=3600)
    learn(domains, "example.com", [a("example.com", "192.0.2.1", ttl=100)])
    clock.at(99.9)
    assert domains.name("192.0.2.1") == "example.com"
    clock.at(100)
    assert domains.name("192.0.2.1") is None


def test_ttl_below_the_floor_lives_for_the_floor() -> None:
    domains, clock = cache(ttl_min=30, ttl_max=3600)
    learn(domains, "example.com", [a("example.com", "192.0.2.1", ttl=0)])
    clock.at(29.9)
    assert domains.name("192.0.2.1") == "example.com"
    clock.at(30)
    assert domains.name("192.0.2.1") is None


def test_ttl_above_the_cap_lives_for_the_cap() -> None:
    domains, clock = cache(ttl_min=30, ttl_max=600)
    learn(domains, "example.com", [a("example.com", "192.0.2.1", ttl=86400)])
    clock.at(599.9)
    assert domains.name("192.0.2.1") == "example.com"
    clock.at(600)
    assert domains.name("192.0.2.1") is None


def test_cap_below_the_floor_is_raised_to_the_floor() -> None:
    domains, clock = cache(ttl_min=60, ttl_max=10)
    learn(domains, "example.com", [a("example.com", "192.0.2.1", ttl=5)])
    clock.at(59.9)
    assert domains.name("192.0.2.1") == "example.com"


def test_expired_entry_is_dropped_when_read() -> None:
    domains, clock = cache(ttl_min=30)
    learn(domains, "example.com", [a("example.com", "192.0.2.1", ttl=30)])
    clock.at(30)
    assert len(domains) == 1
    assert domains.name("192.0.2.1") is None
    assert len(domains) == 0


def test_relearning_renews_the_expiry() -> None:
    domains, clock = cache(ttl_min=30)
    learn(domains, "example.com", [a("example.com", "192.0.2.1", ttl=30)])
    clock.at(20)
    learn(domains, "example.com", [a("example.com", "192.0.2.1", ttl=30)])
    clock.at(40)
    assert domains.name("192.0.2.1") == "example.com"


def test_capacity_evicts_the_oldest_learnt() -> None:
    domains, _ = cache(capacity=2)
    for i in (1, 2, 3):
        learn(domains, f"host{i}.example", [a(f"host{i}.example", f"192.0.2.{i}")])
    assert len(domains) == 2
    assert [domains.name(f"192.0.2.{i}") for i in (1, 2, 3)] == [None, "host2.example", "host3.example"]


def test_relearning_moves_an_address_to_the_newest() -> None:
    domains, _ = cache(capacity=2)
    learn(domains, "host1.example", [a("host1.example", "192.0.2.1")])
    learn(domains, "host2.example", [a("host2.example", "192.0.2.2")])
    learn(domains, "host1.example", [a("host1.example", "192.0.2.1")])
    learn(domains, "host3.example", [a("host3.example", "192.0.2.3")])
    assert [domains.name(f"192.0.2.{i}") for i in (1, 2, 3)] == ["host1.example", None, "host3.example"]


def test_one_answer_beyond_the_capacity_keeps_its_last_addresses() -> None:
    domains, _ = cache(capacity=2)
    learn(domains, "pool.example", [a("pool.example", f"192.0.2.{i}") for i in (1, 2, 3)])
    assert [domains.name(f"192.0.2.{i}") for i in (1, 2, 3)] == [None, "pool.example", "pool.example"]


def test_an_address_takes_the_name_it_was_last_learnt_under() -> None:
    domains, _ = cache()
    learn(domains, "old.example", [a("old.example", "192.0.2.1")])
    learn(domains, "new.example", [a("new.example", "192.0.2.1")])
    assert domains.name("192.0.2.1") == "new.example"
    assert len(domains) == 1
