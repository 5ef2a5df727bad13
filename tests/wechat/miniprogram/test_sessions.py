"""One ``requests.Session`` per thread: a client built once per process stays safe when the
app server runs threads (gunicorn ``gthread``), and each thread keeps its own connection
to WeChat alive (docs/DEPLOY.md §4)."""

import threading

import pytest
import requests

from wechat.miniprogram import MiniProgramClient, WxLoginClient
from wechat.miniprogram.transport import SessionPerThread

LOGIN_URL = "https://api.weixin.qq.com/sns/jscode2session"
MANAGED_URL = "https://api.weixin.qq.com/wxa/sec/order/is_trade_managed"
TOKEN = "ACCESS_TOKEN_0123456789"
THREADS = 6


def in_threads(work, count: int = THREADS) -> list[object]:
    """``work()`` in ``count`` threads started together and kept alive until all are done
    (a thread that ended early could hand its ident, and its session's address, to another);
    what each returned, in order."""
    start, end = threading.Barrier(count), threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        start.wait()
        results[index] = work()
        end.wait()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture
def senders(monkeypatch) -> list[tuple[int, int]]:
    """(thread id, session id) of every request sent, whichever session sent it; the sessions
    are kept alive so that no two of them share an address during the test."""
    sent: list[tuple[int, int]] = []
    seen: list[requests.Session] = []
    send = requests.Session.send

    def recording_send(self, request, **kwargs):
        seen.append(self)
        sent.append((threading.get_ident(), id(self)))
        return send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", recording_send)
    return sent


def assert_one_session_per_thread(sent: list[tuple[int, int]], threads: int) -> None:
    by_thread: dict[int, set[int]] = {}
    for thread, session in sent:
        by_thread.setdefault(thread, set()).add(session)
    assert len(by_thread) == threads
    assert all(len(sessions) == 1 for sessions in by_thread.values())  # kept within a thread
    assert len({s for sessions in by_thread.values() for s in sessions}) == threads  # not shared


def test_each_thread_logs_in_through_its_own_session_and_keeps_it(login, http_mock, senders):
    http_mock.get(LOGIN_URL, json={"openid": "o1", "session_key": "k"})

    in_threads(lambda: [login.code2session("c") for _ in range(3)])

    assert len(senders) == 3 * THREADS
    assert_one_session_per_thread(senders, THREADS)


def test_each_thread_calls_the_server_api_through_its_own_session(mp, http_mock, senders):
    http_mock.post(MANAGED_URL, json={"errcode": 0, "is_trade_managed": True})

    in_threads(lambda: [mp.is_trade_managed(TOKEN) for _ in range(3)])

    assert len(senders) == 3 * THREADS
    assert_one_session_per_thread(senders, THREADS)


@pytest.mark.parametrize("client_class", [WxLoginClient, MiniProgramClient])
def test_the_session_attribute_is_the_calling_threads_own(client_class, login, mp):
    client = login if client_class is WxLoginClient else mp
    mine = client.session

    theirs = in_threads(lambda: (client.session, client.session))

    assert client.session is mine and isinstance(mine, requests.Session)
    assert all(first is second for first, second in theirs)
    assert len({id(mine), *(id(first) for first, _ in theirs)}) == THREADS + 1


def test_a_session_given_to_the_client_is_the_one_every_thread_uses(login, http_mock, senders):
    given = requests.Session()
    client = WxLoginClient(login.config, session=given)
    http_mock.get(LOGIN_URL, json={"openid": "o1", "session_key": "k"})

    in_threads(lambda: client.code2session("c"))

    assert {session for _, session in senders} == {id(given)}


def test_a_thread_gets_a_new_session_only_once():
    sessions = SessionPerThread()

    assert sessions.get() is sessions.get()
    assert in_threads(sessions.get, 1)[0] is not sessions.get()
