import pytest

from core.tickers import TickersFileError, load_tickers, to_yahoo
from tests.conftest import SHARED, require


def test_yahoo_spelling():
    assert to_yahoo(" brk/b ") == "BRK-B"
    assert to_yahoo("ABR^D") == "ABR-PD"
    assert to_yahoo("^GSPC") == "^GSPC"


def test_nasdaq_screener(tmp_path):
    tickers = load_tickers(require(SHARED / "nasdaq_screener.csv"))
    assert len(tickers.symbols) == len(set(tickers.symbols)) > 7000
    assert {"BRK-B", "BRK-A", "BF-B", "AAPL"} <= set(tickers.symbols)
    assert "ECC" in tickers.symbols  # trailing spaces trimmed


def test_plain_list_dedupes_and_rejects_unsafe_symbols(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("aapl\nAAPL\n# comment\n\nmsft\n../../etc\nA B\nTOO-LONG-SYMBOL-NAME\nbrk/b\n")
    tickers = load_tickers(path)
    assert tickers.symbols == ["AAPL", "MSFT", "BRK-B"]
    assert set(tickers.rejected) == {"../../etc", "A B", "TOO-LONG-SYMBOL-NAME"}
    assert all("not a valid symbol" in why for why in tickers.rejected.values())


def test_missing_file_and_column_are_named(tmp_path):
    with pytest.raises(TickersFileError, match=r"not found: .*nope\.csv"):
        load_tickers(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("Name,Sector\nApple,Tech\n")
    with pytest.raises(TickersFileError, match="no 'Symbol' column"):
        load_tickers(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(TickersFileError, match="empty"):
        load_tickers(empty)
