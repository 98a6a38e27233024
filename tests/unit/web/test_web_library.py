"""The face library on a real gallery file: photos enrolled with the real detector and model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bus.config import PipelineConfig, parse_config
from faces.images import read_image
from match.gallery import Gallery
from web.library import Conflict, Library, NotFound, clean_name


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    root = tmp_path_factory.mktemp("library")
    config: PipelineConfig = parse_config(
        {"cameras": [{"id": "c", "source": "x.mp4"}], "match": {"gallery": str(root / "g.fsg")}}
    )
    lib = Library(config, root / "photos")
    analyzer = lib.analyzer()
    Gallery.create(analyzer.model_id, analyzer.model.card.embedding_dim, analyzer.threshold).save(
        root / "g.fsg"
    )
    return lib


def test_enroll_rename_merge_delete(library: Library, photos: Path) -> None:
    assert library.add_photo("macron", read_image(photos / "macron_1.jpg")) == 1
    assert library.add_photo(" macron ", read_image(photos / "macron_2.jpg")) == 2  # spaces dropped
    person = library.person("macron")
    assert person.faces == 2 and len(person.photos) == 2
    assert library.photo_path("macron", person.photos[0]).read_bytes()[:2] == b"\xff\xd8"
    with pytest.raises(Conflict, match="already enrolled as macron"):  # the same photo again
        library.add_photo("emmanuel", read_image(photos / "macron_1.jpg"))
    assert library.add_photo("emmanuel", read_image(photos / "obama_1.jpg")) == 1
    with pytest.raises(Conflict, match="looks like emmanuel"):  # another photo of him, another name
        library.add_photo("barack", read_image(photos / "obama_2.jpg"))
    assert library.rename("macron", "emmanuel") == 3  # merged
    assert [p.name for p in library.people()] == ["emmanuel"]
    assert len(library.photos("emmanuel")) == 3 and library.photos("macron") == []
    with pytest.raises(NotFound):
        library.person("macron")
    gallery = Gallery.load(library.gallery_path)
    identified = gallery.identify(gallery.vectors_of("emmanuel")[:1])[0]
    assert identified.name == "emmanuel"
    assert library.remove("emmanuel") == 3 and library.people() == []
    with pytest.raises(NotFound):
        library.remove("emmanuel")


def test_names_and_models_are_checked(library: Library, photos: Path) -> None:
    with pytest.raises(Conflict, match="reserved"):
        clean_name(" unknown")
    for bad in ("a/b", "..\\x", "tab\there", ""):
        with pytest.raises(Exception, match="name"):
            clean_name(bad)
    with pytest.raises(Exception, match="no face"):
        library.add_photo("blank", np.full((120, 120, 3), 100, np.uint8))
    with pytest.raises(Conflict, match="other-model"):
        library.add_vectors("x", np.ones((1, 128), np.float32), "other-model", [])
    with pytest.raises(NotFound):
        library.photo_path("x", "../../../etc/passwd")
