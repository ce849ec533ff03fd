"""One Toolbox algorithm per declared fusion method, generated from its :class:`~..engine.params.MethodSpec`.

The parameters (Processing widgets, defaults, ranges, choices) come from the method's declaration, the
help from ``help/<id>.md`` when it exists and from the declaration otherwise; the run is one
``api.fuse`` call. A new method therefore needs no code here.
"""
from __future__ import annotations

from typing import Optional

from ..engine import api
from ..engine.params import FILE_OUT, MethodSpec, help_text
from . import params as P
from .base import HsiAlgorithm
from .helptext import help_source, help_string
from .outputs import finish_raster_output


class DeclaredFusionAlgorithm(HsiAlgorithm):
    """The Toolbox algorithm of one declared method.

    Subclasses (made by :func:`fusion_algorithm`) set SPEC, ID, NAME, GROUP, GROUP_ID, OUTPUT_LABEL (the
    output parameter's label) and LAYER_NAME (the output layer's name).
    """

    SPEC: Optional[MethodSpec] = None
    OUTPUT_LABEL = "Fused HR-HSI"
    LAYER_NAME = ""

    def initAlgorithm(self, config=None):  # noqa: N802
        P.add_pair_inputs(self)
        P.add_tile_size(self, P.AUTO_TILE)
        P.add_declared(self, self.SPEC.params)
        P.add_dask_scheduler(self)
        P.add_creation_options(self)
        P.add_output(self, label=self.OUTPUT_LABEL)
        P.add_declared(self, self.SPEC.params, outputs=True)

    def shortHelpString(self):  # noqa: N802
        """``help/<id>.md`` when it exists, else the help generated from the method's declaration."""
        return help_string(self, source=help_source(self.ID) or help_text(self.SPEC))

    def execute(self, parameters, context, feedback):
        out = self.parameterAsOutputLayer(parameters, P.OUTPUT, context)
        values = P.declared_values(self, self.SPEC.params, parameters, context)
        result = api.fuse(P.raster_path(self, parameters, P.HSI, context),
                          P.raster_path(self, parameters, P.MSI, context), out, self.SPEC.id, values,
                          tile_size=self.parameterAsInt(parameters, P.TILE_SIZE, context), feedback=feedback,
                          creation_options=P.creation_options(self, parameters, context),
                          scheduler=P.dask_scheduler(self, parameters, context))
        finish_raster_output(context, out, self.LAYER_NAME)
        outputs = {P.OUTPUT: result["OUTPUT"]}
        for p in self.SPEC.params:
            if p.kind == FILE_OUT and values.get(p.name):
                outputs[p.processing_name] = values[p.name]
        return outputs


def fusion_algorithm(spec: MethodSpec, group: str, group_id: str, algorithm_id: str = "",
                     output_label: str = DeclaredFusionAlgorithm.OUTPUT_LABEL, layer_name: str = "") -> type:
    """The algorithm class of one declared method.

    Toolbox id ``fuse_<id>`` and layer name "<title> fusion" unless given.
    """
    return type(f"Fuse_{spec.id}_Algorithm", (DeclaredFusionAlgorithm,), {
        "SPEC": spec, "ID": algorithm_id or f"fuse_{spec.id}", "NAME": spec.toolbox_name, "GROUP": group,
        "GROUP_ID": group_id, "OUTPUT_LABEL": output_label, "LAYER_NAME": layer_name or f"{spec.title} fusion"})
