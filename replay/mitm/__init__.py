"""The mitmproxy glue: the only package of replay that imports mitmproxy."""
