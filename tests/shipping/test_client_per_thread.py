"""The server API client (access_token, uploads, subscribe messages): one per process,
shared by the threads of a threaded worker, each thread calling through its own session."""

import threading

from shipping.access_token import miniprogram_client


def in_a_thread(work):
    result = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join()
    return result[0]


def test_threads_share_the_client_and_each_has_its_own_session():
    client, session = miniprogram_client(), miniprogram_client().session

    other_client, other_session = in_a_thread(
        lambda: (miniprogram_client(), miniprogram_client().session)
    )

    assert other_client is client
    assert other_session is not session
    assert miniprogram_client().session is session
