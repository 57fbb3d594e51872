"""RetryPolicy.run without a client: every limit and default, pinned by behaviour.

Each test drives the loop with an operation that raises the failures a SharePoint request
raises (`HttpFailure`, requests' connection errors) and asserts what the loop did: how often it
called, how long it slept, why it stopped. The defaults are used on purpose (only sleep, clock and
random are injected), so changing one of them (5 s without Retry-After, 8 attempts, 0.5 s base,
30 s cap, full jitter, 600 s total wait) fails a test here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate

import pytest
import requests

from sp_sync.sharepoint.retry import (
    HttpFailure,
    RetryAction,
    RetryDecision,
    RetryPolicy,
    RetryStopped,
    classify,
    parse_retry_after,
    server_wait,
)


@dataclass
class Harness:
    """A fake monotonic clock whose sleep only advances it, and an operation that fails N times."""

    now: float = 5000.0
    sleeps: list[float] = field(default_factory=list)
    calls: int = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def policy(self, rng: Callable[[], float] = lambda: 1.0) -> RetryPolicy:
        """The default limits; only sleep, clock and random are replaced."""
        return RetryPolicy(sleep=self.sleep, clock=self.clock, rng=rng)

    def failing(self, failure: Exception, times: int | None = None) -> Callable[[], str]:
        """An operation raising `failure` `times` times (None: always), then returning "ok"."""

        def operation() -> str:
            self.calls += 1
            if times is None or self.calls <= times:
                raise failure
            return "ok"

        return operation


def throttled(status: int = 429, **headers: str) -> HttpFailure:
    return HttpFailure(status, {k.replace("_", "-"): v for k, v in headers.items()})


def stop(run: Callable[[], object]) -> RetryStopped:
    with pytest.raises(RetryStopped) as info:
        run()
    return info.value


# -- defaults ------------------------------------------------------------------------------------


def test_throttle_without_retry_after_waits_five_seconds() -> None:
    h = Harness()
    assert h.policy().run(h.failing(throttled(429), times=2)) == "ok"
    assert h.sleeps == [5.0, 5.0]
    h503 = Harness()
    assert h503.policy().run(h503.failing(throttled(503), times=1)) == "ok"
    assert h503.sleeps == [5.0]


def test_eight_attempts_then_the_retry_limit() -> None:
    h = Harness()
    stopped = stop(lambda: h.policy().run(h.failing(throttled(429, Retry_After="1"))))
    assert h.calls == 8
    assert h.sleeps == [1.0] * 7
    assert (stopped.attempts, stopped.waited, stopped.why) == (
        8,
        7.0,
        "the retry limit was reached",
    )
    assert isinstance(stopped.failure, HttpFailure) and stopped.failure.status == 429
    assert stopped.decision.action is RetryAction.WAIT_RETRY_AFTER


def test_backoff_doubles_from_half_a_second_and_is_capped_at_thirty() -> None:
    h = Harness()  # rng at its upper bound: each wait is the whole cap
    stopped = stop(lambda: h.policy().run(h.failing(throttled(502))))
    assert h.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert stopped.why == "the retry limit was reached" and h.calls == 8
    longer = RetryPolicy(rng=lambda: 1.0)
    assert [longer.backoff(n) for n in (7, 8, 12, 40)] == [30.0, 30.0, 30.0, 30.0]


def test_backoff_is_full_jitter_over_zero_to_the_cap() -> None:
    draws = iter([0.0, 0.25, 0.5, 0.75])
    h = Harness()
    h.policy(rng=lambda: next(draws)).run(h.failing(throttled(504), times=4))
    # 0.5·0 is no wait at all (no sleep call), then 1·0.25, 2·0.5, 4·0.75
    assert h.sleeps == [0.25, 1.0, 3.0]
    assert h.calls == 5


def test_default_jitter_draws_uniformly_from_the_whole_range() -> None:
    policy = RetryPolicy()  # random.random, not injected
    waits = [policy.backoff(7) for _ in range(500)]
    assert all(0.0 <= w < 30.0 for w in waits)
    # Full jitter: the draws spread over [0, 30). Equal jitter (15 + 15·r), no jitter or a
    # constant rng would fail one of these; by chance they fail with p < 1e-20.
    assert min(waits) < 3.0 and max(waits) > 27.0
    assert len(set(waits)) > 400


def test_total_wait_is_capped_at_six_hundred_seconds() -> None:
    h = Harness()
    stopped = stop(lambda: h.policy().run(h.failing(throttled(429, Retry_After="200"))))
    assert h.sleeps == [200.0, 200.0, 200.0]  # 600 s exactly is allowed, 800 s is not
    assert h.calls == 4
    assert (stopped.waited, stopped.why) == (600.0, "the total wait limit was reached")


def test_a_single_wait_over_the_total_cap_is_not_slept() -> None:
    h = Harness()
    stopped = stop(lambda: h.policy().run(h.failing(throttled(503, Retry_After="601"))))
    assert h.sleeps == [] and h.calls == 1
    assert stopped.why == "the total wait limit was reached" and stopped.waited == 0.0


def test_ratelimit_reset_counts_towards_the_total_cap() -> None:
    h = Harness()
    failure = throttled(429, Retry_After="1", RateLimit_Reset="250")
    stopped = stop(lambda: h.policy().run(h.failing(failure)))
    assert h.sleeps == [250.0, 250.0]
    assert stopped.why == "the total wait limit was reached"


def test_the_default_policy_equals_the_documented_limits() -> None:
    # The dataclass compares its limits (not sleep/clock/rng): this is the client's default.
    assert RetryPolicy() == RetryPolicy(
        max_attempts=8,
        backoff_base=0.5,
        backoff_max=30.0,
        default_throttle_wait=5.0,
        max_total_wait=600.0,
    )


# -- deadline ------------------------------------------------------------------------------------


def test_deadline_stops_before_a_wait_that_would_pass_it() -> None:
    h = Harness()
    run = h.policy().run
    stopped = stop(lambda: run(h.failing(throttled(429, Retry_After="4")), deadline=h.now + 8))
    assert h.sleeps == [4.0, 4.0]  # ending exactly at the deadline is allowed
    assert stopped.why == "waiting 4.0 s more would pass the run's deadline"
    assert h.now == 5008.0 and h.calls == 3


def test_deadline_already_passed_means_no_wait_at_all() -> None:
    h = Harness()
    run = h.policy().run
    stopped = stop(lambda: run(h.failing(throttled(502)), deadline=h.now - 1))
    assert h.sleeps == [] and h.calls == 1 and "deadline" in (stopped.why or "")


def test_no_deadline_means_only_the_other_limits_apply() -> None:
    h = Harness()
    stopped = stop(lambda: h.policy().run(h.failing(throttled(429, Retry_After="80"))))
    assert h.sleeps == [80.0] * 7 and stopped.why == "the retry limit was reached"


def test_deadline_uses_the_policy_clock() -> None:
    h = Harness()
    ticks = iter([0.0, 100.0])
    policy = RetryPolicy(sleep=h.sleep, clock=lambda: next(ticks), rng=lambda: 1.0)
    stopped = stop(lambda: policy.run(h.failing(throttled(429, Retry_After="1")), deadline=50.0))
    assert h.sleeps == [1.0] and h.calls == 2  # the second check sees the clock at 100
    assert "deadline" in (stopped.why or "")


# -- what is retried -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "calls"),
    [
        (HttpFailure(404, {}, "-2130575338, Microsoft.SharePoint.SPException"), 1),
        (HttpFailure(400, {}), 1),
        (HttpFailure(403, {}), 1),
        (HttpFailure(412, {}), 1),
        (HttpFailure(500, {}, "-2147024860, Microsoft.SharePoint.SPQueryThrottledException"), 1),
        (HttpFailure(500, {}, "-2146233086, System.ArgumentOutOfRangeException"), 1),
        (HttpFailure(500, {}), 8),
        (HttpFailure(408, {}), 8),
        (requests.ConnectionError("refused"), 8),
        (requests.Timeout("read timed out"), 8),
        (requests.exceptions.ChunkedEncodingError("cut"), 8),
        (requests.exceptions.InvalidURL("bad"), 1),
    ],
)
def test_fatal_answers_stop_at_once_transient_ones_are_retried(
    failure: Exception, calls: int
) -> None:
    h = Harness()
    stopped = stop(lambda: h.policy(rng=lambda: 0.0).run(h.failing(failure)))
    assert h.calls == calls
    assert stopped.failure is failure
    assert stopped.why == (None if calls == 1 else "the retry limit was reached")


def test_other_exceptions_pass_through_untouched() -> None:
    h = Harness()
    with pytest.raises(KeyError):
        h.policy().run(h.failing(KeyError("bug")))
    assert h.calls == 1 and h.sleeps == []


def test_401_renews_the_token_once_without_waiting() -> None:
    h = Harness()
    renewals: list[str] = []
    retries: list[tuple[RetryAction, float]] = []
    result = h.policy().run(
        h.failing(HttpFailure(401, {}), times=1),
        renew_token=lambda: renewals.append("renewed"),
        on_retry=lambda d, s: retries.append((d.action, s)),
    )
    assert result == "ok" and renewals == ["renewed"] and h.sleeps == []
    assert retries == [(RetryAction.RENEW_TOKEN, 0.0)]

    again = Harness()

    # A second renewal would loop for ever on a token the server keeps refusing; the renew hook
    # fails loudly instead of hanging if the loop ever renews twice.
    def renew() -> None:
        renewals.append("again")
        assert renewals.count("again") == 1, "renewed the token twice"

    stopped = stop(
        lambda: again.policy().run(again.failing(HttpFailure(401, {})), renew_token=renew)
    )
    assert again.calls == 2 and renewals == ["renewed", "again"]
    assert stopped.why is None and stopped.decision.action is RetryAction.RENEW_TOKEN


def test_401_without_a_way_to_renew_is_final() -> None:
    h = Harness()
    stopped = stop(lambda: h.policy().run(h.failing(HttpFailure(401, {}))))
    assert h.calls == 1 and stopped.why is None


def test_mode_false_never_retries_and_refused_retries_only_throttling() -> None:
    h = Harness()
    stop(lambda: h.policy().run(h.failing(throttled(429, Retry_After="1")), mode=False))
    assert h.calls == 1
    h = Harness()
    stop(lambda: h.policy().run(h.failing(HttpFailure(401, {})), mode=False, renew_token=print))
    assert h.calls == 1

    refused = Harness()
    assert refused.policy().run(refused.failing(throttled(503), times=2), mode="refused") == "ok"
    assert refused.sleeps == [5.0, 5.0]
    gateway = Harness()
    stopped = stop(lambda: gateway.policy().run(gateway.failing(throttled(502)), mode="refused"))
    assert gateway.calls == 1 and stopped.why is None  # the server may have applied the write


def test_on_retry_reports_each_wait_after_sleeping() -> None:
    h = Harness()
    seen: list[tuple[float, list[float]]] = []
    h.policy().run(
        h.failing(throttled(429, Retry_After="3"), times=2),
        on_retry=lambda _d, s: seen.append((s, list(h.sleeps))),
    )
    assert seen == [(3.0, [3.0]), (3.0, [3.0, 3.0])]


def test_retry_after_zero_retries_without_sleeping() -> None:
    h = Harness()
    assert h.policy().run(h.failing(throttled(503, Retry_After="0"), times=3)) == "ok"
    assert h.sleeps == [] and h.calls == 4


# -- HTTP-date Retry-After with the real clock ---------------------------------------------------


def _http_date(seconds_from_now: float) -> str:
    return formatdate(time.time() + seconds_from_now, usegmt=True)


def test_http_date_retry_after_with_the_real_clock() -> None:
    """No clock injected anywhere: the wall clock turns the date into seconds."""
    sleeps: list[float] = []
    calls = 0

    def operation() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise HttpFailure(429, {"Retry-After": _http_date(120)})
        return "ok"

    assert RetryPolicy(sleep=sleeps.append).run(operation) == "ok"
    # An HTTP date has whole seconds: between 119 and 120 s from now (+ slack for a slow machine).
    assert len(sleeps) == 1 and 110.0 < sleeps[0] <= 120.0


def test_http_date_parsing_with_the_real_clock() -> None:
    assert 50.0 < (parse_retry_after(_http_date(60)) or 0.0) <= 60.0
    assert parse_retry_after(_http_date(-60)) == 0.0
    assert 280.0 < (server_wait({"Retry-After": _http_date(290)}) or 0.0) <= 290.0
    decision = classify(HttpFailure(503, {"retry-after": _http_date(30)}))
    assert decision.action is RetryAction.WAIT_RETRY_AFTER
    assert decision.server_wait is not None and 20.0 < decision.server_wait <= 30.0


def test_http_date_in_the_past_means_retry_now() -> None:
    sleeps: list[float] = []
    failures: Iterable[HttpFailure] = iter([HttpFailure(429, {"Retry-After": _http_date(-3600)})])

    def operation() -> str:
        for failure in failures:
            raise failure
        return "ok"

    assert RetryPolicy(sleep=sleeps.append).run(operation) == "ok"
    assert sleeps == []


def test_wait_for_other_actions_is_zero() -> None:
    policy = RetryPolicy(rng=random.random)
    assert policy.wait_for(RetryDecision(RetryAction.GIVE_UP), 3) == 0.0
    assert policy.wait_for(RetryDecision(RetryAction.RENEW_TOKEN), 3) == 0.0
    assert policy.wait_for(RetryDecision(RetryAction.WAIT_RETRY_AFTER, -4.0), 1) == 0.0
