"""Headless Chromium for the browser tests and the dashboard benchmark (Debian's build)."""

#: Flags for a machine without outside network: no sandbox (root in CI), no GPU, no background
#: fetches (updates, sync, QUIC) that would wait on a network that is not there.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
