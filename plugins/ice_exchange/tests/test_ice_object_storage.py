"""ICE parcels kept in object storage: two instances on loopback, each with its own
bucket on a real S3-protocol server (``moto_server``), exchanging over the webservice
route.  The sender's parts go to its bucket when the parcel is made, the receiver's
when it has verified them; both read them back from there, and no parcel folder is
left on either host's disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3_helpers import S3Server, object_keys, storage_settings

from .conftest import Instance, close, introduce, make_instance
from .test_ice_webservice import CLAIMS, ask_jp_for_a_search, exchange_on


@pytest.fixture
def s3_pair(tmp_path: Path, template_db: Path,
            s3_server: S3Server) -> Iterator[tuple[Instance, Instance]]:
    made = []
    for name, office, role in (("sg", "SG", "recipient"), ("jp", "JP", "both")):
        bucket = f"cf-ice-{name}-{tmp_path.name[-8:].lower().replace('_', '-')}"
        s3_server.client().create_bucket(Bucket=bucket)
        made.append(make_instance(tmp_path, template_db, name=name, office=office, role=role,
                                  secret=f"{name}-instance-secret-" + "z" * 16,
                                  storage=storage_settings(s3_server.endpoint, bucket)))
    sg, jp = made
    introduce(sg, jp)
    yield sg, jp
    close(sg, jp)


def test_an_ice_parcel_is_stored_in_the_bucket_and_read_back_from_it(
        s3_pair: tuple[Instance, Instance], s3_server: S3Server) -> None:
    sg, jp = s3_pair
    sg.server.start()
    jp.server.start()
    sg_api, jp_api = sg.api("sg.examiner"), jp.api("jp.examiner")
    exchange_id = ask_jp_for_a_search(sg_api)

    parcel = exchange_on(jp_api, exchange_id)["parcels"][0]
    prefix = f"ice/parcels/{parcel['id'][:2]}/{parcel['id']}/"
    for instance in (sg, jp):
        bucket = instance.settings.storage.s3_bucket
        assert object_keys(s3_server, bucket, "ice/") == [prefix + "0.bin", prefix + "note.bin"]
        assert not (instance.settings.data_dir / "ice" / "parcels" / parcel["id"][:2]
                    / parcel["id"]).exists()
    # the recipient decrypts the message and the file from its bucket ...
    assert parcel["message"] == "Could you search claims 1-3?"
    assert jp_api.get(parcel["files"][0]["url"]).content == CLAIMS
    # ... and so does the sender, from its own
    at_sg = exchange_on(sg_api, exchange_id)["parcels"][0]
    assert at_sg["message"] == "Could you search claims 1-3?"
    assert sg_api.get(at_sg["files"][0]["url"]).content == CLAIMS
