"""Validation as one package: structural checks, the answer check, PoT, RAG, routing between them, and
the verdicts. Imports flow one way: verdicts → tools → routing → pot, rag → answer;
verdicts → structural, strength (review's reading of a verdict)."""
