"""Validation as one package: structural checks, the answer check, PoT, RAG, routing between them, and
the verdicts. Imports flow one way: verdicts → routing → pot, rag → answer, structural."""
