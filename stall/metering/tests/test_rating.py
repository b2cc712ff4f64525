"""The rating functions and the rounding rule, on quantities (no events needed)."""

from decimal import Decimal

import pytest

from stall.metering.rating import live_charge_due, price_rate, round_half_up

D = Decimal


def test_round_half_up_rounds_halves_up_once():
    """Halves go up; below a half goes down."""
    assert [round_half_up(D(x)) for x in ("0.5", "1.49", "1.5", "2.5", "200000.2")] == [1, 1, 2, 3, 200000]


def test_a_million_and_one_calls_at_a_fifth_of_a_cent_charged_every_ten_cents_pay_the_total_rounded_once():
    """1,000,001 calls at 0.2¢, charged live each time 10¢ accrues and at period end, pay
    round_half_up(200,000.2¢) = 200,000¢: the charges, each rounded, add up to the total rounded once."""
    unit = D("0.2")
    charged, charges, quantity = 0, [], 0
    # Usage arrives in uneven batches; the rating runs after each, over the period's quantity.
    step = 0
    while quantity < 1_000_001:
        step = step % 13 + 1
        quantity = min(1_000_001, quantity + step)
        due = live_charge_due(exact_cost=price_rate(model="per_unit", quantity=D(quantity), unit_price=unit),
                              charged=charged, threshold=10)
        if due:
            charges.append(due)
            charged += due
    final = live_charge_due(exact_cost=price_rate(model="per_unit", quantity=D(1_000_001), unit_price=unit),
                            charged=charged, threshold=10, period_end=True)
    assert charged + final == 200_000 == round_half_up(D(1_000_001) * unit)
    assert 0 <= final < 10  # what stayed under the threshold; the extra 0.2¢ rounded away, once
    assert all(10 <= c <= 13 for c in charges)  # at most one batch (13 calls, 2.6¢) past the threshold


def test_the_remainder_carries_to_the_next_charge():
    """At 0.3¢ a call with a 1¢ threshold: 4 calls (1.2¢) charge 1¢, 0.2¢ carries; at 7 calls
    (2.1¢) 1¢ more (1.1¢ accrued), and the period's end charges 2.1¢ - 2¢ rounded = 0."""
    cost = lambda n: price_rate(model="per_unit", quantity=D(n), unit_price=D("0.3"))  # noqa: E731
    assert live_charge_due(exact_cost=cost(3), charged=0, threshold=1) == 0
    assert live_charge_due(exact_cost=cost(4), charged=0, threshold=1) == 1
    assert live_charge_due(exact_cost=cost(7), charged=1, threshold=1) == 1
    assert live_charge_due(exact_cost=cost(7), charged=2, threshold=1, period_end=True) == 0
    # 0.45¢ accrued at the end rounds down, 0.5¢ up.
    assert live_charge_due(exact_cost=D("2.45"), charged=2, threshold=1, period_end=True) == 0
    assert live_charge_due(exact_cost=D("2.5"), charged=2, threshold=1, period_end=True) == 1


TIERS = [{"up_to": 1000, "unit_price": "0"}, {"up_to": None, "unit_price": "0.1"}]


@pytest.mark.parametrize("quantity, cost", [(0, "0"), (999, "0"), (1000, "0"), (1001, "0.1"), (1500, "50.0")])
def test_tiered_first_thousand_free_then_a_tenth_of_a_cent(quantity, cost):
    """First 1,000 calls free, then 0.1¢ each: 1,500 calls cost 50¢."""
    assert price_rate(model="tiered", quantity=D(quantity), unit_price=D(0), tiers=TIERS) == D(cost)


def test_tiered_three_graduated_tiers():
    """100 at 1¢, the next 900 at 0.5¢, the rest at 0.25¢: 2,000 units cost 100 + 450 + 250 = 800¢."""
    tiers = [{"up_to": 100, "unit_price": "1"}, {"up_to": 1000, "unit_price": "0.5"},
             {"up_to": None, "unit_price": "0.25"}]
    assert price_rate(model="tiered", quantity=D(2000), unit_price=D(0), tiers=tiers) == D(800)
    assert price_rate(model="tiered", quantity=D(50), unit_price=D(0), tiers=tiers) == D(50)


@pytest.mark.parametrize("quantity, cost", [(0, 0), (1, 50), (1000, 50), (1001, 100), (2500, 150)])
def test_package_of_a_thousand_calls_at_fifty_cents(quantity, cost):
    """Per started package of 1,000 calls at 50¢."""
    assert price_rate(model="package", quantity=D(quantity), unit_price=D(50), package_size=1000) == D(cost)
