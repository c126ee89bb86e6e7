from django.shortcuts import render

from console.access import permission_required
from console.selectors import instrument_universe
from console.services.health import check_engine


@permission_required("trading.view_trading_desk")
def home(request):
    return render(request, "trading/home.html", {"instruments": instrument_universe(), "engine": check_engine()})
