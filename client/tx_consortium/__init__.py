"""python-threatexchange extension: the `consortium` exchange, for the `threatexchange` CLI and HMA.

    threatexchange config extensions add tx_consortium

See the README, "python-threatexchange and HMA"."""

from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest

from .exchange import ConsortiumSignalExchangeAPI

TX_MANIFEST = ThreatExchangeExtensionManifest(apis=(ConsortiumSignalExchangeAPI,))
