"""The parallel parse of a large fetch yields what the sequential one does, in order."""

from __future__ import annotations

from rolodex.connectors.carddav import parsing
from rolodex.connectors.carddav.parsing import CardResource
from tests.carddav_servers import vcard


def test_parallel_parse_matches_sequential_in_order() -> None:
    cards = [
        CardResource(f"http://h/b/{i}.vcf", f'"{i}"', vcard(f"u{i}", f"Ann Example{i}"))
        for i in range(450)
    ]
    cards[7] = CardResource("http://h/b/7.vcf", '"7"', b"not a vcard")
    expected = parsing.parse_chunk("http://h/b/", [(c.href, c.etag, c.data) for c in cards])
    got = list(parsing.parse_in_parallel("http://h/b/", iter(cards), workers=2))
    assert got == expected
    assert len(got) == 449
    assert [item.remote_id for item in got][:8] == [
        f"http://h/b/{i}.vcf" for i in range(9) if i != 7
    ][:8]
