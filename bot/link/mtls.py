"""Telling a coordinator that requires client certificates from a connection lost by chance.

A coordinator started with `--tls-client-ca` refuses a caller without a certificate after
the TLS 1.3 handshake, by closing the connection with no TLS alert (`botfleet.tls.hung_up`).
The lost connection alone proves nothing: a coordinator that is restarting drops calls
too. So the bot asks once more, sending nothing: a coordinator that waits for a request
after a completed handshake takes callers without a certificate; one that hangs up at once
does not, and retrying cannot change that.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from yarl import URL

log = logging.getLogger(__name__)

# How long the probe waits for the handshake, then for the hang-up. A refusing coordinator
# hangs up within a round trip; one that waits for a request is left after this.
PROBE_WITHIN_S = 5.0


async def hangs_up_after_handshake(
    base: str, context: ssl.SSLContext, within_s: float = PROBE_WITHIN_S
) -> bool:
    """Whether the HTTPS server at `base` closes a connection right after the handshake,
    before any request: how it refuses a caller without the client certificate it requires.
    False whenever that is not certain (not HTTPS, not reached, the handshake failed)."""
    url = URL(base)
    if url.scheme != "https" or url.host is None:
        return False
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(url.host, url.port, ssl=context, server_hostname=url.host),
            within_s,
        )
    except (OSError, TimeoutError) as exc:
        log.debug("probe of %s: no handshake (%s); not a certificate refusal", base, exc)
        return False
    try:
        first = await asyncio.wait_for(reader.read(1), within_s)
    except TimeoutError:
        return False  # it waits for a request, as a server that needs no certificate does
    except ConnectionResetError:
        return True
    except OSError as exc:
        log.debug("probe of %s: %s; not a certificate refusal", base, exc)
        return False
    finally:
        writer.close()
    return first == b""
