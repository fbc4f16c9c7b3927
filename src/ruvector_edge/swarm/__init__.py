"""The swarm runtime: coordinators admit agents, hand out tasks and merge what agents learn.

```python
coordinator = await Coordinator(config, listen="ws://127.0.0.1:8080").start()
agent = SwarmAgent(SwarmConfig().with_join_token(coordinator.join_token))
await agent.join_swarm(coordinator.url)
agent.learn("edit_ts", "typescript-developer", 0.9)
```
"""

from ruvector_edge.swarm.agent import (
    AgentStats,
    MessageHandler,
    SwarmAgent,
    TaskContext,
    TaskHandler,
    TaskOutcome,
)
from ruvector_edge.swarm.allocation import (
    ALLOCATORS,
    AllocationStrategy,
    Candidate,
    create_allocator,
    eligible,
)
from ruvector_edge.swarm.coordinator import Coordinator, CoordinatorStats, Member
from ruvector_edge.swarm.election import ElectionRole, LeaderElection
from ruvector_edge.swarm.protocol import ROSTER_TOPIC, ErrorCode, PeerInfo, alloc_state, task_state
from ruvector_edge.swarm.store import SwarmStore
from ruvector_edge.swarm.tasks import TaskBoard, TaskRecord, TaskState

__all__ = [
    "ALLOCATORS",
    "ROSTER_TOPIC",
    "AgentStats",
    "AllocationStrategy",
    "Candidate",
    "Coordinator",
    "CoordinatorStats",
    "ElectionRole",
    "ErrorCode",
    "LeaderElection",
    "Member",
    "MessageHandler",
    "PeerInfo",
    "SwarmAgent",
    "SwarmStore",
    "TaskBoard",
    "TaskContext",
    "TaskHandler",
    "TaskOutcome",
    "TaskRecord",
    "TaskState",
    "alloc_state",
    "create_allocator",
    "eligible",
    "task_state",
]
