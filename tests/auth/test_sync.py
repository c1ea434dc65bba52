"""The blocking API's token calls against lite with ``--auth``: issue, list, use, refuse,
revoke (docs/auth.md)."""

from __future__ import annotations

import pytest

import s2kit
from s2kit.errors import ServerError
from s2kit.sync import S2

from .conftest import ROOT, unique


def test_sync_issue_list_use_revoke(url: str) -> None:
    endpoints = s2kit.Endpoints.for_url(url)
    token_id = unique("sync")
    scope = s2kit.AccessTokenScope(basins=s2kit.PrefixMatch(""), ops=(s2kit.Operation.LIST_BASINS,))
    with S2(ROOT, endpoints=endpoints) as root:
        secret = root.issue_access_token(token_id, scope)
        (info,) = root.list_access_tokens(prefix=token_id).items
        assert (info.id, info.scope.ops) == (token_id, (s2kit.Operation.LIST_BASINS,))
        with S2(secret, endpoints=endpoints) as client:
            client.list_basins()
            with pytest.raises(ServerError) as denied:
                client.create_basin(unique("basin"))
            assert (denied.value.status, denied.value.code) == (403, "permission_denied")
            root.revoke_access_token(token_id)
            with pytest.raises(ServerError) as gone:
                client.list_basins()
            assert (gone.value.status, gone.value.code) == (401, "authn")
