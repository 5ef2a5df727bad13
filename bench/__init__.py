"""Benchmarks (issue #6): notify throughput against a wechatpy peer, order creation,
queries per request, growth. Entry point: ``python -m bench``; see docs/PERFORMANCE.md."""
