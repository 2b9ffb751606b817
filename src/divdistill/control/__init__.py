"""Control transfer (paper Sec. 6, Table 1, Fig. 2): LoRA styles, DreamBooth concepts and Concept Sliders moved
between the base and its distilled students, both ways; a kohya → peft converter for the authors' published sliders."""
from .adapters import AdapterMismatchError, add_lora, check_keys, load_adapter, load_controls, read_lora, save_adapter
from .kohya import KohyaKeyError, is_kohya, kohya_to_peft, peft_to_kohya

__all__ = ["AdapterMismatchError", "add_lora", "check_keys", "load_adapter", "load_controls", "read_lora",
           "save_adapter", "KohyaKeyError", "is_kohya", "kohya_to_peft", "peft_to_kohya"]
