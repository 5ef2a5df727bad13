"""stable_token, the token check every mini-program server API call makes, and the pipeline's
faults and counters.

A bare §n in this file is a section of docs/protocol/miniprogram-server-api.md.
"""

import pytest

from tests.wxsim.client import APPID, SECRET
from wxsim.tokens import FORCE_MIN_GAP_S, FORCE_PER_DAY, REPLACED_GRACE_S

TOKEN = "/cgi-bin/stable_token"
MANAGED = "/wxa/sec/order/is_trade_managed"
T0 = 1_735_689_600.0


def fetch(wx, **overrides):
    body = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET, **overrides}
    return wx.api(TOKEN, {k: v for k, v in body.items() if v is not None})


def use(wx, token):
    return wx.api(MANAGED, {"appid": APPID}, token)


@pytest.fixture
def clock(sim):
    """The simulator's clock, moved by hand: ``clock.now``."""

    class Clock:
        now = T0

    sim.now = lambda: Clock.now
    return Clock


def test_token_answer_has_no_errcode_and_works(wx):
    answer = fetch(wx)
    assert set(answer) == {"access_token", "expires_in"}
    assert answer["expires_in"] == 7200 and len(answer["access_token"]) > 100
    assert use(wx, answer["access_token"]) == {"errcode": 0, "errmsg": "ok",
                                               "is_trade_managed": True}


def test_normal_mode_answers_the_same_token_with_what_remains(wx, clock):
    first = fetch(wx)
    clock.now += 1000
    second = fetch(wx)
    assert second["access_token"] == first["access_token"]
    assert second["expires_in"] == 6200


def test_normal_mode_renews_in_the_last_five_minutes_and_the_old_one_lives_on(wx, clock):
    old = fetch(wx)["access_token"]
    clock.now += 7200 - 299
    new = fetch(wx)
    assert new["access_token"] != old and new["expires_in"] == 7200
    assert use(wx, old)["errcode"] == 0  # its own expiry is not cut short
    clock.now += 299
    assert use(wx, old)["errcode"] == 42001
    assert use(wx, new["access_token"])["errcode"] == 0


def test_force_refresh_replaces_the_token_which_lingers_five_minutes(wx, clock):
    old = fetch(wx)["access_token"]
    new = fetch(wx, force_refresh=True)["access_token"]
    assert new != old
    assert fetch(wx)["access_token"] == new  # normal mode now answers the new one
    clock.now += REPLACED_GRACE_S - 1
    assert use(wx, old)["errcode"] == 0
    clock.now += 1
    assert use(wx, old)["errcode"] == 40001  # "not latest", not "expired"
    assert use(wx, new)["errcode"] == 0


def test_force_refresh_budget_30_seconds_apart_and_20_a_day(wx, clock):
    fetch(wx, force_refresh=True)
    clock.now += FORCE_MIN_GAP_S - 1
    assert fetch(wx, force_refresh=True)["errcode"] == 45011
    for _ in range(FORCE_PER_DAY - 1):
        clock.now += FORCE_MIN_GAP_S
        assert "access_token" in fetch(wx, force_refresh=True)
    clock.now += FORCE_MIN_GAP_S
    assert fetch(wx, force_refresh=True)["errcode"] == 45009
    clock.now += 86400
    assert "access_token" in fetch(wx, force_refresh=True)


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"grant_type": "authorization_code"}, 40002),
        ({"grant_type": None}, 40002),
        ({"appid": None}, 41002),
        ({"appid": "wx-somebody-else"}, 40013),
        ({"secret": None}, 41004),
        ({"secret": "wrong"}, 40125),
        ({"force_refresh": "true"}, 47001),
    ],
)
def test_credentials_are_checked(wx, sim, overrides, errcode):
    answer = fetch(wx, **overrides)
    assert answer["errcode"] == errcode and " rid: " in answer["errmsg"]
    assert sim.tokens == {}


def test_get_is_refused_with_43002(wx):
    answer = wx.api(TOKEN, None, method="GET")
    assert answer["errcode"] == 43002


def test_cgi_bin_token_is_not_played(wx):
    response = wx.http.get(wx.base_url + "/cgi-bin/token", params={"appid": APPID})
    assert response.status_code == 404


# --- the token check of every other call (§1.3) ------------------------------------------------

def test_missing_unknown_and_expired_tokens(wx, clock):
    token = fetch(wx)["access_token"]
    assert wx.api(MANAGED, {"appid": APPID})["errcode"] == 41001
    assert use(wx, "")["errcode"] == 41001
    assert use(wx, "86_not-a-token")["errcode"] == 40001
    clock.now += 7200
    assert use(wx, token)["errcode"] == 42001


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
def test_stale_control_makes_the_next_use_fail_and_normal_mode_reissues(wx, errcode):
    token = fetch(wx)["access_token"]
    response = wx.control("POST", "/sim/tokens/stale", {"errcode": errcode})
    assert response.json() == {"stale": 1}
    assert use(wx, token)["errcode"] == errcode
    fresh = fetch(wx)["access_token"]  # WeChat's current token is another one now
    assert fresh != token and use(wx, fresh)["errcode"] == 0


def test_stale_but_still_current_needs_a_force_refresh(wx):
    token = fetch(wx)["access_token"]
    wx.control("POST", "/sim/tokens/stale", {"access_token": token, "still_current": True})
    assert fetch(wx)["access_token"] == token  # the same token just refused (§1.4): force
    assert use(wx, token)["errcode"] == 40001
    forced = fetch(wx, force_refresh=True)["access_token"]
    assert use(wx, forced)["errcode"] == 0


def test_stale_control_errors(wx):
    assert wx.control("POST", "/sim/tokens/stale", {"errcode": 40002}).status_code == 400
    assert wx.control("POST", "/sim/tokens/stale", {"access_token": "x"}).status_code == 404


def test_tokens_listing(wx):
    token = fetch(wx)["access_token"]
    use(wx, token)
    listing = wx.control("GET", "/sim/tokens").json()
    assert listing["current"] == token
    assert listing["tokens"][0]["uses"] == 1 and listing["tokens"][0]["stale_errcode"] == 0


def test_short_token_ttl_from_config(wx, sim, clock, monkeypatch):
    monkeypatch.setattr(sim, "config", sim.config.__class__(
        appid=APPID, secret=SECRET, mch_id=sim.config.mch_id, mch_key=sim.config.mch_key,
        token_ttl=60))
    first = fetch(wx)
    assert first["expires_in"] == 60
    clock.now += 45  # the last quarter of a short life
    assert fetch(wx)["access_token"] != first["access_token"]


# --- the JSON pipeline: body, faults, counters ----------------------------------------------------

@pytest.mark.parametrize("body", [b"{not json", b"[]", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_47001(wx, access_token, body):
    response = wx.http.post(wx.base_url + MANAGED, params={"access_token": access_token},
                            data=body, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; encoding=utf-8"
    assert response.json()["errcode"] == 47001


def test_is_trade_managed_checks_the_appid_and_follows_the_control(wx, access_token):
    assert wx.api(MANAGED, {"appid": "wx-other"}, access_token)["errcode"] == 40013
    assert wx.control("POST", "/sim/trade_managed", {"managed": False}).json() == {
        "is_trade_managed": False}
    assert wx.api(MANAGED, {"appid": APPID}, access_token)["is_trade_managed"] is False
    assert wx.control("POST", "/sim/trade_managed", {"managed": "no"}).status_code == 400


def test_faults_apply_to_the_json_paths(wx, access_token):
    for spec in ({"path": MANAGED, "mode": "systemerror"}, {"path": MANAGED, "mode": "http500"},
                 {"path": TOKEN, "mode": "garbage"}):
        assert wx.control("POST", "/sim/faults", spec).status_code == 200
    assert wx.api(MANAGED, {"appid": APPID}, access_token)["errcode"] == -1
    response = wx.http.post(wx.base_url + MANAGED, params={"access_token": access_token},
                            json={"appid": APPID}, timeout=5)
    assert response.status_code == 500
    garbage = wx.http.post(wx.base_url + TOKEN, json={}, timeout=5)
    assert garbage.status_code == 200 and not garbage.content.startswith(b"{")
    assert use(wx, access_token)["errcode"] == 0  # each fault was used once


def test_systemerror_records_nothing(wx, sim):
    wx.control("POST", "/sim/faults", {"path": TOKEN, "mode": "systemerror"})
    assert fetch(wx)["errcode"] == -1
    assert sim.tokens == {}


def test_bad_sign_is_for_the_xml_paths_only(wx):
    response = wx.control("POST", "/sim/faults", {"path": TOKEN, "mode": "bad_sign"})
    assert response.status_code == 400


def test_stats_count_the_json_paths(wx, access_token):
    use(wx, access_token)
    use(wx, access_token)
    stats = wx.control("GET", "/sim/stats").json()
    assert stats["requests"] == {TOKEN: 1, MANAGED: 2}
    assert stats["pushes"] == {"sent": 0, "accepted": 0} and stats["messages"] == 0
