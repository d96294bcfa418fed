"""Model cards speak to users about the model, its data and its machine: no link to a METHOD.md the repository
does not have, no word about the session that trained it (both in the shipped cards and in the code that
writes them: lab/cards.py, lab/ship.py, lab/teachers/card.py)."""

from lab import cards, paths

WRITERS = ["lab/cards.py", "lab/ship.py", "lab/teachers/card.py"]
SHIPPED = sorted((paths.REPO_ROOT / "data" / "checkpoints").glob("*/README.md"))


def _missing_links(text: str) -> list[str]:
    return [name for name in ("METHOD.md",) if name in text and not (paths.REPO_ROOT / name).exists()]


def test_shipped_cards_link_only_to_what_exists_and_never_mention_the_session():
    assert SHIPPED
    for card in SHIPPED:
        text = card.read_text()
        assert not _missing_links(text), card
        assert "session" not in text.lower(), card


def test_card_writers_link_only_to_what_exists_and_never_mention_the_session():
    for path in WRITERS:
        text = (paths.REPO_ROOT / path).read_text()
        assert not _missing_links(text), path
        assert "this session" not in text and "no GPU in this" not in text, path
    cpu = cards.machine(cards.describe_machine("cpu", 1), "small crops")
    assert cpu.startswith("machine: CPU only") and "Trained on CPU at reduced scale" in cpu and "session" not in cpu
