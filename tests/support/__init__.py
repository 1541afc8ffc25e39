"""Fakes, proxies and fixtures the tests share: scripted chat models, a fault-injecting proxy, a fake
E2B server, and per-area helpers. Never imported by the product."""
