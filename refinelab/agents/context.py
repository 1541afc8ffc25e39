"""What every agent node needs at run time and that must never enter the checkpointed graph state:
the run store, the ledger, the model clients, the tracer, the prompts. Built once per process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from refinelab.agents.dedup import DuplicateIndex
from refinelab.agents.expand_batches import DraftBatches
from refinelab.agents.options import RunHooks, RunOptions
from refinelab.agents.reference_index import ReferenceIndex
from refinelab.config import Settings
from refinelab.domains import SkillTaxonomy, SubjectDomains, load_skills, load_subject_domains
from refinelab.metrics.targets import Targets
from refinelab.prompts.loader import Pack, PromptLibrary, pack_for
from refinelab.schema import QAItem
from refinelab.tools.cache import ResponseCache
from refinelab.tools.ledger import Ledger
from refinelab.tools.llm import ChatClient
from refinelab.tools.store import RunStore
from refinelab.tools.tracing import Tracer


@dataclass
class AgentContext:
    """Handles shared by the nodes of one run (LangGraph `context`, not state)."""

    run_dir: Path
    settings: Settings
    store: RunStore
    ledger: Ledger
    tracer: Tracer
    targets: Targets
    cache: ResponseCache | None = None
    prompts: PromptLibrary = field(default_factory=PromptLibrary)
    subject_domains: SubjectDomains = field(default_factory=load_subject_domains)
    skills: SkillTaxonomy = field(default_factory=load_skills)
    pack_overrides: dict[str, str] = field(default_factory=dict)
    options: RunOptions = field(default_factory=RunOptions)
    hooks: RunHooks = field(default_factory=RunHooks)
    _clients: dict[str, ChatClient] = field(default_factory=dict)
    draft_batches: DraftBatches = field(default_factory=DraftBatches)  # batched expand drafts (expand_batches.py)
    dedup_index: DuplicateIndex | None = None  # built on first use by the validator, topped up after
    # the references `refine --decontaminate` named: no new item may copy one of their items
    # (validation/structural.py; api/decontamination.py fills it, and again on a resume)
    contamination_references: list[ReferenceIndex] = field(default_factory=list)
    _embedder: Callable[[Sequence[str]], np.ndarray] | None = None
    _skill_exemplars: dict[str, np.ndarray] | None = None  # unit vectors of each skill's examples (agents/labels.py)
    # the skill probe's answer to a content-free question, once per run and prompt pack (agents/labels.py)
    _skill_priors: dict[str, list[float]] = field(default_factory=dict)
    # the first input items of each subject, the letter probe's solved examples (agents/panel.probe_examples)
    _probe_examples: dict[str, list[QAItem]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.options, RunOptions) or not isinstance(self.hooks, RunHooks):
            raise TypeError("AgentContext needs RunOptions and RunHooks (build it with api.context.open_run_context)")

    def client(self, role: str) -> ChatClient:
        """The budgeted, cached, traced client for a role (judge, writer, validator)."""
        if role not in self._clients:
            spec = getattr(self.settings.roles, role)
            self._clients[role] = ChatClient(
                spec, self.ledger, cache=self.cache, tracer=self.tracer,
                chat_model=self.hooks.chat_models.get(role), role=role,
            )
        return self._clients[role]

    def embedder(self) -> Callable[[Sequence[str]], np.ndarray]:
        """The run's text embedder: `hooks.embed`, else MiniLM (tools/embeddings.py), loaded once."""
        if self._embedder is None:
            if self.hooks.embed is not None:
                hook = self.hooks.embed
                self._embedder = lambda texts: np.asarray(hook(list(texts)), dtype=float)
            else:
                from refinelab.tools.embeddings import get_embedder

                model = get_embedder()
                self._embedder = lambda texts: np.asarray(model.embed(list(texts)), dtype=float)
        return self._embedder

    def pack(self, item: QAItem) -> Pack:
        return self.prompts.pack(pack_for(item.subject, item.domain, self.pack_overrides))

    def domain_of(self, item: QAItem) -> str:
        return item.domain or self.subject_domains.domain_for(item.subject, "other") or "other"
