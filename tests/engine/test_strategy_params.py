"""Strategy parameter sets: schema ranges, atomic updates, versions, rollback and the wire form."""

from decimal import Decimal

import pytest

from engine.protocol import StrategyState, UpdateStrategyParams
from engine.strategies import (
    AvellanedaStoikov,
    AvellanedaStoikovParams,
    ParamSet,
    StrategyError,
    create,
    params_to_wire,
)
from engine.strategies.avellaneda import Model


def make_set(**changes):
    return ParamSet(AvellanedaStoikovParams, changes, operator="ops", reason="start", ts=1)


@pytest.mark.parametrize(
    ("name", "allowed", "refused"),
    [
        ("gamma", Decimal("0.000001"), Decimal("0")),
        ("gamma", Decimal("1000000"), Decimal("1000000.1")),
        ("k", Decimal("0.01"), Decimal("-1.5")),
        ("k", Decimal("1E-9"), Decimal("1E-10")),  # below 1e-9 the GLFT term can overflow
        ("A", Decimal("1E-9"), Decimal("1E-300")),
        ("A", Decimal("1"), Decimal("0")),
        ("horizon_s", Decimal("0.001"), Decimal("0")),
        ("sigma", Decimal("0.5"), Decimal("0")),
        ("sigma", Decimal("1E+9"), Decimal("1E+400")),  # the float would be inf
        ("order_size", 1, 0),
        ("requote_threshold_ticks", 0, -1),
        ("min_spread_ticks", 1, 0),
        ("imbalance_levels", 100, 101),
        ("signal_coefficient", Decimal("-1000000"), Decimal("-1000000.5")),
        ("model", "GLFT", "GLFTX"),
        ("allow_cross", True, 1),
        ("order_size", Decimal("2"), Decimal("2.5")),  # an integral Decimal is an int; 2.5 lots is not
        ("gamma", Decimal("0.2"), Decimal("NaN")),
    ],
)
def test_each_range_allows_the_bound_and_refuses_one_past_it(name, allowed, refused):
    params = make_set()

    version = params.update({name: allowed}, operator="ops", ts=2)
    with pytest.raises(StrategyError) as refused_error:
        params.update({name: refused}, operator="ops", ts=3)

    assert version == 2
    assert refused_error.value.code == "STRATEGY_PARAM_INVALID"
    assert params.version == 2


def test_a_refused_update_leaves_the_current_set_and_version_untouched():
    params = make_set(gamma=Decimal("0.2"), order_size=2, max_inventory=10)
    before = params.current

    with pytest.raises(StrategyError) as error:
        # The first change is valid on its own; the second is not: nothing may be applied.
        params.update({"gamma": Decimal("0.5"), "k": Decimal("-1")}, operator="ops", ts=5)

    assert error.value.code == "STRATEGY_PARAM_INVALID"
    assert params.current is before
    assert params.current.gamma == 0.2
    assert params.version == 1
    assert len(params.history) == 1


def test_the_merged_set_is_validated_so_cross_field_rules_see_final_values():
    params = make_set(order_size=2, max_inventory=4)

    with pytest.raises(StrategyError) as error:
        params.update({"order_size": 5}, operator="ops", ts=2)
    version = params.update({"order_size": 5, "max_inventory": 5}, operator="ops", ts=3)

    assert error.value.code == "STRATEGY_PARAM_INVALID"
    assert "max_inventory" in error.value.reason
    assert version == 2
    assert (params.current.order_size, params.current.max_inventory) == (5, 5)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"gama": Decimal("0.1")}, "STRATEGY_PARAM_UNKNOWN"),
        ({}, "STRATEGY_PARAM_EMPTY"),
        ({"gamma": "0.1"}, "STRATEGY_PARAM_INVALID"),  # a str is not a number: the console sends Decimals
    ],
)
def test_bad_updates_are_refused_with_a_reason_code(changes, code):
    params = make_set()

    with pytest.raises(StrategyError) as error:
        params.update(changes, operator="ops", ts=2)

    assert error.value.code == code
    assert params.version == 1


def test_versions_count_up_and_history_keeps_operator_reason_and_time():
    params = make_set()

    v2 = params.update({"gamma": Decimal("0.2")}, operator="alice", reason="wider", ts=10)
    v3 = params.update({"k": Decimal("2")}, operator="bob", reason="fitted k", ts=20)

    assert (v2, v3, params.version) == (2, 3, 3)
    entries = [(h.version, h.operator, h.reason, h.ts, h.params.gamma, h.params.k) for h in params.history]
    assert entries == [
        (1, "ops", "start", 1, 0.1, 1.5),
        (2, "alice", "wider", 10, 0.2, 1.5),
        (3, "bob", "fitted k", 20, 0.2, 2.0),
    ]


def test_rollback_reapplies_an_earlier_set_as_a_new_version():
    params = make_set()
    params.update({"gamma": Decimal("0.3")}, operator="alice", ts=10)
    params.update({"gamma": Decimal("0.4"), "model": "GLFT"}, operator="alice", ts=20)

    version = params.rollback(1, operator="bob", reason="undo", ts=30)

    assert version == 4
    assert params.current == params.get(1).params
    assert params.history[-1].rolled_back_to == 1
    assert params.history[-1].operator == "bob"
    assert params.get(3).params.model is Model.GLFT  # history is never rewritten


def test_rollback_to_a_version_that_never_existed_is_refused():
    params = make_set()

    with pytest.raises(StrategyError) as error:
        params.rollback(7, operator="bob", ts=30)

    assert error.value.code == "STRATEGY_PARAM_VERSION_UNKNOWN"
    assert params.version == 1


def test_compare_and_set_refuses_an_update_based_on_a_stale_version():
    params = make_set()
    params.update({"gamma": Decimal("0.3")}, operator="alice", ts=10)

    with pytest.raises(StrategyError) as error:
        params.update({"gamma": Decimal("0.5")}, operator="bob", ts=11, base_version=1)
    version = params.update({"gamma": Decimal("0.5")}, operator="bob", ts=12, base_version=2)

    assert error.value.code == "STRATEGY_PARAM_VERSION_CONFLICT"
    assert version == 3


def test_wire_form_round_trips_exactly_what_the_operator_typed():
    params = make_set(gamma=Decimal("0.015"), sigma=Decimal("1.7"), model="GLFT", order_size=3, max_inventory=9)

    wire = params_to_wire(params.current)
    again = ParamSet(AvellanedaStoikovParams, wire).current

    assert wire["gamma"] == Decimal("0.015")
    assert wire["sigma"] == Decimal("1.7")
    assert wire["model"] == "GLFT"
    assert wire["order_size"] == 3
    assert again == params.current


def test_a_strategy_applies_a_parameter_change_to_its_quotes_atomically():
    strategy = AvellanedaStoikov("mm1", "BTC-USD", {"max_inventory": 5})

    with pytest.raises(StrategyError):
        strategy.update_params({"gamma": Decimal("0.5"), "order_size": 6}, operator="ops", ts=1)
    version = strategy.update_params({"gamma": Decimal("0.5")}, operator="ops", ts=2)

    assert version == 2
    assert strategy.params.gamma == 0.5
    assert strategy._gamma == 0.5
    assert strategy.params.order_size == 1


def test_registry_creates_a_stopped_strategy_by_name_with_validated_parameters():
    strategy = create("avellaneda_stoikov", "mm2", "ETH-USD", {"gamma": Decimal("0.05"), "model": "GLFT"})

    with pytest.raises(StrategyError) as unknown:
        create("no_such_strategy", "mm3", "ETH-USD")
    with pytest.raises(StrategyError) as invalid:
        create("avellaneda_stoikov", "mm4", "ETH-USD", {"gamma": Decimal("-1")})

    assert isinstance(strategy, AvellanedaStoikov)
    assert (strategy.strategy_id, strategy.symbol, strategy.params.gamma) == ("mm2", "ETH-USD", 0.05)
    assert strategy.state is StrategyState.STOPPED
    assert unknown.value.code == "STRATEGY_UNKNOWN"
    assert invalid.value.code == "STRATEGY_PARAM_INVALID"


def test_start_and_stop_are_refused_when_already_in_that_state():
    strategy = AvellanedaStoikov("mm1", "BTC-USD")
    strategy.start(5)

    with pytest.raises(StrategyError) as twice:
        strategy.start(6)
    strategy.stop(7)
    with pytest.raises(StrategyError) as stopped:
        strategy.stop(8)

    assert twice.value.code == "STRATEGY_ALREADY_RUNNING"
    assert stopped.value.code == "STRATEGY_NOT_RUNNING"
    assert strategy.state is StrategyState.STOPPED


def test_strategy_rollback_restores_the_quotes_of_the_earlier_version():
    strategy = AvellanedaStoikov("mm1", "BTC-USD", {"gamma": Decimal("0.1")})
    strategy.update_params({"gamma": Decimal("0.9")}, operator="ops", ts=1)

    version = strategy.rollback_params(1, operator="ops", reason="too wide", ts=2)

    assert version == 3
    assert strategy.params.gamma == 0.1
    assert strategy._gamma == 0.1
    assert strategy.param_set.history[-1].rolled_back_to == 1


def test_the_parameters_of_a_protocol_command_are_accepted_as_they_arrive():
    command = UpdateStrategyParams(
        command_id="c1",
        operator="alice",
        ts=1,
        strategy_id="mm1",
        params={"gamma": Decimal("0.2"), "order_size": Decimal("2"), "model": "GLFT", "allow_cross": True},
    )
    params = make_set()

    version = params.update(command.params, operator=command.operator, ts=command.ts)

    assert version == 2
    assert (params.current.gamma, params.current.order_size, params.current.allow_cross) == (0.2, 2, True)
    assert params.current.model is Model.GLFT


class _NoGlftWhileLong(AvellanedaStoikov):
    """A strategy with its own rule on top of the schema: no switch to GLFT while holding inventory."""

    __slots__ = ()

    def _check_params(self, params):
        if params.model is Model.GLFT and self.position:
            raise StrategyError("STRATEGY_PARAM_REFUSED", "flatten before switching to GLFT")


def test_a_strategy_rule_beyond_the_schema_refuses_an_update_and_a_rollback_atomically():
    strategy = _NoGlftWhileLong("mm1", "BTC-USD")
    strategy.update_params({"model": "GLFT"}, operator="ops", ts=1)
    strategy.update_params({"model": "AS"}, operator="ops", ts=2)
    strategy.set_position(3)

    with pytest.raises(StrategyError) as update:
        strategy.update_params({"model": "GLFT"}, operator="ops", ts=3)
    with pytest.raises(StrategyError) as rollback:
        strategy.rollback_params(2, operator="ops", ts=4)

    assert update.value.code == rollback.value.code == "STRATEGY_PARAM_REFUSED"
    assert strategy.params_version == 3
    assert strategy.params.model is Model.AS
    assert strategy._glft is False


def test_a_params_struct_built_in_code_is_validated_like_wire_values():
    good = ParamSet(AvellanedaStoikovParams, AvellanedaStoikovParams(model=Model.GLFT, gamma=0.2))

    with pytest.raises(StrategyError) as error:
        # Constructing a Struct directly skips its Meta ranges; ParamSet checks them again.
        ParamSet(AvellanedaStoikovParams, AvellanedaStoikovParams(gamma=-1.0))

    assert (good.current.model, good.current.gamma) == (Model.GLFT, 0.2)
    assert error.value.code == "STRATEGY_PARAM_INVALID"
