"""What an error or a warning must never print: the user-info of a URL, and anything that looks like a credential.

`masking.py` hides the values of fields the models declare secret. A credential can also be typed into a plain
field (`dockerHost.host: ssh://deploy:PASSWORD@host`, a token pasted as `storage.accessKey`, a password in a
mirror's `remoteUrl`), and every message reaches the CI log of a pull-request preview. So every line a
`ConfigError` or a warning prints goes through `redact`:

- a URL's user-info (`scheme://user:password@`, `scheme://token@`) and an authority's (`user:password@host`)
  is replaced whole, whatever it holds;
- a word that Yelp's detect-secrets takes for a credential (its plugins: AWS, GitHub, GitLab, Slack, Stripe and
  other tokens, JWTs, private keys, `password: ...` keywords, Basic-auth URLs, and base64 or hex strings above
  its entropy limits) is replaced whole. An image digest is hex of high entropy too: such a word is hidden as
  well, which costs an error message some detail and never leaks anything.
"""

from __future__ import annotations

import functools
import re
from typing import Any

SECRET = "<secret>"

# scheme://user-info@  (RFC 3986: the user-info ends at the first @ before the path; it has no / ? #)
_URL_USER_INFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#@\s'\"]*)@")
# The placeholders the messages' own examples use (`ssh://user@host`): kept, so that the examples still read.
_PLACEHOLDERS = frozenset({"user"})
# user:password@host without a scheme (a Redis or registry address typed with its login)
_AUTHORITY_USER_INFO = re.compile(r"(?<![\w/:@.-])[^\s/?#@:'\"(){}\[\],]+:[^\s/?#@'\"]*@(?=[\w\[])")
# The words detect-secrets is asked about: runs between spaces, quotes and brackets, as messages quote values.
_WORD = re.compile(r"[^\s'\"(){}\[\],<>]+")


def redact(text: str) -> str:
    """`text` with every URL user-info and every credential-looking word replaced by `<secret>`."""
    text = _URL_USER_INFO.sub(
        lambda match: match[0] if match["info"] in _PLACEHOLDERS else f"{match['scheme']}{SECRET}@", text
    )
    text = _AUTHORITY_USER_INFO.sub(f"{SECRET}@", text)
    return _WORD.sub(lambda match: SECRET if looks_like_credential(match[0]) else match[0], text)


def reveals_credential(value: Any) -> bool:
    """Whether a config value, shown as it was given (any shape), would show user-info or a credential."""
    if isinstance(value, dict):
        return any(reveals_credential(key) or reveals_credential(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(reveals_credential(item) for item in value)
    text = str(value)
    return redact(text) != text


@functools.lru_cache(maxsize=4096)
def looks_like_credential(word: str) -> bool:
    """detect-secrets' verdict on one word, with the limits its own scans apply (its ad-hoc line scan reports
    every high-entropy candidate; a scan keeps those above the plugin's entropy limit)."""
    if word == SECRET or len(word) < 8:
        return False
    # Imported on first use: only a bad config or a warning pays for loading the plugins.
    from detect_secrets.core.scan import scan_line
    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
    from detect_secrets.settings import default_settings, get_plugins

    with default_settings():
        plugins = {plugin.secret_type: plugin for plugin in get_plugins()}
        for found in scan_line(word):
            plugin = plugins[found.type]
            value = found.secret_value or ""
            if isinstance(plugin, HighEntropyStringsPlugin) and not (
                plugin.calculate_shannon_entropy(value) > plugin.entropy_limit
            ):
                continue
            return True
    return False
