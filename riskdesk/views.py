from django.shortcuts import render

from console.access import permission_required
from console.selectors import instrument_universe
from console.services.health import check_engine


@permission_required("riskdesk.view_risk_desk")
def home(request):
    return render(request, "riskdesk/home.html", {"instruments": instrument_universe(), "engine": check_engine()})
