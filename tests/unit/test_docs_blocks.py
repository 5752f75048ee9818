"""tests/docs_blocks.py: fenced blocks of a Markdown page and the simulated-cluster markers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from docs_blocks import Block, DocumentError, Marker, blocks, shell_blocks, simulated_run

PAGE = """\
# Title

Text with `inline code`.

<!-- sim: skip -->
```sh
kind create cluster
```

```sh
helm install x chart
```

```yaml
a: 1
```

<!-- sim: skip -->

```sh
docker build .
```

~~~sh
echo tilde fence
~~~

    indented text is not a fence

<!-- sim: stop -->
```sh
curl http://127.0.0.1:8000/
```

````sh
echo '```'
````
"""


def test_blocks_in_order_with_language_marker_text_and_line() -> None:
    found = blocks(PAGE)
    assert [(b.language, b.marker, b.line) for b in found] == [
        ("sh", Marker.SKIP, 6),
        ("sh", Marker.NONE, 10),
        ("yaml", Marker.NONE, 14),
        ("sh", Marker.SKIP, 20),
        ("sh", Marker.NONE, 24),
        ("sh", Marker.STOP, 31),
        ("sh", Marker.NONE, 35),
    ]
    assert found[0] == Block("sh", "kind create cluster\n", Marker.SKIP, 6)
    assert found[4].text == "echo tilde fence\n"
    assert found[6].text == "echo '```'\n"


def test_shell_blocks_leave_out_other_languages() -> None:
    assert [b.text for b in shell_blocks(PAGE)][1:3] == ["helm install x chart\n", "docker build .\n"]


def test_simulated_run_drops_skipped_blocks_and_stops_at_stop() -> None:
    assert [b.text for b in simulated_run(PAGE)] == ["helm install x chart\n", "echo tilde fence\n"]


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ("<!-- sim: later -->\n```sh\nx\n```\n", "line 1: unknown marker 'sim: later'"),
        ("<!-- sim: skip -->\nsome text\n```sh\nx\n```\n", "line 1: marker 'sim: skip' is not followed"),
        ("text\n<!-- sim: stop -->\n", "line 2: marker 'sim: stop' is not followed"),
        ("a\n```sh\necho\n", "line 2: unclosed code fence"),
        ("````sh\necho\n```\n", "line 1: unclosed code fence"),
    ],
)
def test_documents_that_cannot_run_as_written_are_refused(page: str, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        blocks(page)


def test_empty_block_and_no_blocks() -> None:
    assert blocks("```sh\n```\n") == [Block("sh", "", Marker.NONE, 1)]
    assert blocks("just text\n") == []
