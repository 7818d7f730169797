"""Person descriptors beyond the face: clothing colours and pattern, hair, eyewear, beard, head pose, posture."""
