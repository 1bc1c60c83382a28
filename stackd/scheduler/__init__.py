"""Pure ordering and placement: dependency graph, waves, replica slots, nodes.

No I/O happens here (tests/unit/test_layering.py checks the imports), and every
function returns the same answer for the same input. The reconciler's calls:

    build_graph(services: Iterable[ServiceNode]) -> nx.DiGraph
        Edge u → v means "u depends on v"; edge data `dependencies`, `condition`,
        `required`; node data `service`; `graph.graph["warnings"]` lists optional
        dependencies skipped because their target is undefined. Raises
        MissingDependencyError / DependencyCycleError (both SpecError).
    start_waves(graph) -> list[list[str]]   dependencies first; names sorted per wave
    stop_waves(graph) -> list[list[str]]    dependents first
    select_for_up(graph, names) -> nx.DiGraph    names + everything they depend on
    with_dependencies(needs, names) -> frozenset  the same rule on a plain mapping
    select_for_stop(graph, names) -> nx.DiGraph  names + everything that depends on them
        (unknown names raise UsageError; no names means the whole graph)
    slots(services | graph) -> list[Slot]   Slot(service, index 1..replicas)
    place(slots, nodes, strategy="spread"|"binpack") -> Placement
        Raises UnschedulableError (a ConflictError) naming the service and the numbers.

From a loaded stack: `from_stack(stack) -> list[ServiceNode]` in
stackd.scheduler.from_stack (kept out of this namespace so that importing the
scheduler doesn't import the spec model). This host as a node:
`stackd.hostinfo.local_node()`. Drawing the graph: stackd.scheduler.render.
"""

from stackd.scheduler.constraints import Constraint, parse_constraint
from stackd.scheduler.errors import (
    DependencyCycleError,
    MissingDependencyError,
    UnschedulableError,
)
from stackd.scheduler.graph import build_graph, dependencies_of, find_cycle, service_of
from stackd.scheduler.nodes import Node
from stackd.scheduler.order import (
    select_for_stop,
    select_for_up,
    start_waves,
    stop_waves,
    with_dependencies,
)
from stackd.scheduler.placement import STRATEGIES, Placement, Strategy, place
from stackd.scheduler.services import (
    Condition,
    Dependency,
    DependencyKind,
    Resources,
    ServiceNode,
)
from stackd.scheduler.slots import Slot, slots

__all__ = [
    "STRATEGIES",
    "Condition",
    "Constraint",
    "Dependency",
    "DependencyCycleError",
    "DependencyKind",
    "MissingDependencyError",
    "Node",
    "Placement",
    "Resources",
    "ServiceNode",
    "Slot",
    "Strategy",
    "UnschedulableError",
    "build_graph",
    "dependencies_of",
    "find_cycle",
    "parse_constraint",
    "place",
    "select_for_stop",
    "select_for_up",
    "service_of",
    "slots",
    "start_waves",
    "stop_waves",
    "with_dependencies",
]
