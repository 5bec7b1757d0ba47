"""visionloop: the open-source computer-vision loop, from labelled images to a served model.

Importing the package is cheap: it pulls in no torch, cv2 or onnxruntime.
"""

__version__ = "0.1.0"
