"""The translation catalogs: stall/locale/<language>/LC_MESSAGES/django.po, compiled to .mo.

The .po files are the source, kept in git; the .mo files Django reads are built from them by
Babel, in Python, so installing Stall needs no GNU gettext (``make messages`` runs this at
install, and the test suite runs it before it starts). Extracting new strings into the .po files
(``make messages-extract``) is Django's makemessages, which does need gettext.
"""

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def catalogs_compile(root: Path = LOCALE_DIR, *, force: bool = False) -> list[Path]:
    """Compile every .po under ``root`` whose .mo is missing or older; return the .mo written."""
    written = []
    for po in sorted(root.glob("*/LC_MESSAGES/*.po")):
        mo = po.with_suffix(".mo")
        if not force and mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as source:
            catalog = read_po(source)
        with mo.open("wb") as target:
            write_mo(target, catalog)  # fuzzy entries are left out, as msgfmt does
        written.append(mo)
    return written


if __name__ == "__main__":
    for path in catalogs_compile(force=True):
        print(f"compiled {path.relative_to(LOCALE_DIR.parent.parent)}")
