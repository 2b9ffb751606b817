"""The students chapter: the sampler control (each student's sampler given to the teacher) and the plateau rows."""
