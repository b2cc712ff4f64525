from django.utils import translation

from stall.catalog.names import membership_product_name, product_name_shown


def test_a_membership_products_interval_is_shown_in_the_readers_language():
    """ "Kova (monthly)" is the stored (API) name; pages show the interval translated, and leave
    every other name, parentheses and all, as the creator wrote it."""
    assert membership_product_name(tier_name="Kova", interval="month") == "Kova (monthly)"
    assert len(membership_product_name(tier_name="K" * 200, interval="year")) == 120
    with translation.override("ko"):
        assert product_name_shown("Kova (monthly)") == "Kova (월간)"
        assert product_name_shown("Kova (a) (yearly)") == "Kova (a) (연간)"
        assert product_name_shown("Zine (monthly issue)") == "Zine (monthly issue)"
        assert product_name_shown("(weekly)") == "(weekly)"
        assert product_name_shown("") == ""
    with translation.override("pt-br"):
        assert product_name_shown("Kova (weekly)") == "Kova (semanal)"
    with translation.override("en"):
        assert product_name_shown("Kova (monthly)") == "Kova (monthly)"
