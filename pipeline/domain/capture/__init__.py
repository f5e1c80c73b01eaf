"""Capture: raw inquiries become leads, answers to excluded inquiries, or rejections."""
