import pytest

from core.data.tickers import TickersFileError, load_tickers, to_yahoo


def test_yahoo_spelling():
    assert to_yahoo(" brk/b ") == "BRK-B"
    assert to_yahoo("ABR^D") == "ABR-PD"  # Nasdaq's preferred share
    assert to_yahoo("epr_c") == "EPR-PC"  # stooq's preferred share (EPR_C.csv)
    assert to_yahoo("^GSPC") == "^GSPC"


# Rows shaped like the Nasdaq screener export (May 2024): its columns, a class share, a
# preferred share, a symbol with trailing spaces (ECC), a row without sector, a duplicate.
SCREENER = """Symbol,Name,Last Sale,Net Change,% Change,Market Cap,Country,IPO Year,Volume,Sector,Industry
AAPL,Apple Inc. Common Stock,$189.98,0.14,0.074%,2913355000000.00,United States,1980,40867421,Technology,Computer Manufacturing
BRK/B,Berkshire Hathaway Inc.,$413.20,1.10,0.267%,891390000000.00,United States,,3075384,Finance,Property-Casualty Insurers
ABR^D,Arbor Realty Trust 6.375% Series D,$16.51,0.05,0.304%,,United States,,5171,,
ECC   ,Eagle Point Credit Company Inc.,$9.68,0.01,0.103%,,United States,2014,540000,Finance,Finance/Investors Services
AAPL,Apple Inc. Common Stock,$189.98,0.14,0.074%,2913355000000.00,United States,1980,40867421,Technology,Computer Manufacturing
"""


def test_nasdaq_screener(tmp_path):
    path = tmp_path / "nasdaq_screener.csv"
    path.write_text(SCREENER)
    tickers = load_tickers(path)
    assert tickers.symbols == ["AAPL", "BRK-B", "ABR-PD", "ECC"]  # file order, deduplicated
    assert tickers.rejected == {}


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


def test_letters_that_upper_case_into_other_tickers_are_refused():
    """'ß' and the 'fi' ligature upper-case into 'SS' and 'FI': real tickers of other firms."""
    from core.data.tickers import parse_symbols

    symbols, rejected = parse_symbols(["ß", "ﬁx", "ÄAPL", "aapl", "brk/b"])
    assert symbols == ["AAPL", "BRK-B"]
    assert set(rejected) == {"ß", "ﬁx", "ÄAPL"}
    assert all("not a valid symbol" in why for why in rejected.values())


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('Symbol,Name,Sector\nAAPL,"Apple Inc,Tech\nKO,Coke,Staples\nXOM,Exxon,Energy\n', 2),
        ('Symbol,Name\nAAPL,Apple\nKO,"Co"ke"\nXOM,Exxon\n', 3),
    ],
)
def test_a_badly_quoted_tickers_file_is_named_with_its_line_not_dumped(tmp_path, text, line):
    from core.data.tickers import TickersFileError, load_tickers

    path = tmp_path / "tickers.csv"
    path.write_text(text)
    with pytest.raises(TickersFileError) as bad:
        load_tickers(path)
    message = str(bad.value)
    assert message.startswith(
        f"tickers file {path} is not valid CSV: the record starting on line {line}"
    )
    assert "\n" not in message and "Exxon" not in message  # not the file's content
